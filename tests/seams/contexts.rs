//! The context changes of the matrix, and one cell run in a child process:
//! set the context up, run the way, tear unirun down, look for leftovers.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use unirun::process::ProcessOptions;
use unirun::RuntimeConfig;

use super::probe::{self, Snapshot};
use super::ways::{self, Bad, Way};

/// A context change; each cell runs in a process of its own, since all
/// of them are process-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctx {
    /// Nothing changed.
    Plain,
    /// The way runs in a `to_process` child of a parent that ran it first.
    Forked,
    /// The way ran, `reset()` with more of its work in flight (joined
    /// after), the way runs again.
    AfterReset,
    /// The way ran, `configure(max_workers(2))` with more of its work in
    /// flight (joined after), the way runs again.
    AfterConfigure,
    /// The shared default met a multi-thread tokio runtime that was then
    /// dropped; the way runs after the drop.
    DroppedRuntime,
    /// `UNIRUN_THREAD_MODE=gil`.
    Gil,
    /// `SIGCHLD` ignored, as daemons and supervisors do.
    SigchldIgnored,
    /// `SIGPIPE` at its default (terminate), as C hosts have it.
    SigpipeDefault,
    /// No new thread or process can be created (`RLIMIT_NPROC` 0; as root,
    /// which the limit exempts, after switching to uid `nobody`).
    NoNewThreads,
}

impl Ctx {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ctx::Plain => "plain",
            Ctx::Forked => "in a forked child",
            Ctx::AfterReset => "after reset()",
            Ctx::AfterConfigure => "after configure()",
            Ctx::DroppedRuntime => "after a tokio runtime it met dropped",
            Ctx::Gil => "UNIRUN_THREAD_MODE=gil",
            Ctx::SigchldIgnored => "SIGCHLD ignored",
            Ctx::SigpipeDefault => "SIGPIPE default",
            Ctx::NoNewThreads => "thread creation failing",
        }
    }

    /// Environment the parent sets for the cell's process.
    pub(crate) fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Ctx::Gil => &[("UNIRUN_THREAD_MODE", "gil")],
            _ => &[],
        }
    }

    /// Whether a typed error (instead of the value) is a right answer for
    /// `way` here: inside a forked child unirun's helpers may refuse with
    /// a clear error, without threads anything that needs one may, and a
    /// call whose worker was killed may report it.
    pub(crate) fn errors_allowed(self, way: Way) -> bool {
        match self {
            Ctx::Forked | Ctx::NoNewThreads => true,
            Ctx::SigpipeDefault => matches!(way, Way::CallShared | Way::CallScope),
            _ => false,
        }
    }
}

/// How long a forked child may take before it counts as hung; shorter
/// than the cell's alarm, so the hang is reported as such.
const FORKED_LIMIT: Duration = Duration::from_secs(12);

/// What a cell reports to the parent on its stdout.
pub(crate) const RESULT_TAG: &str = "SEAM-CELL";

/// Runs `way` under `ctx` in this (child) process and prints the result
/// line the parent reads: `SEAM-CELL ok`, `SEAM-CELL typed <text>` or
/// `SEAM-CELL fail <text>`.
pub(crate) fn cell(ctx: Ctx, way: Way) {
    let (kind, text) = match run_cell(ctx, way) {
        Ok(()) => ("ok", String::new()),
        Err(Bad::Typed(text)) => ("typed", text),
        Err(Bad::Skip(text)) => ("skip", text),
        Err(Bad::Fail(text)) => ("fail", text),
    };
    println!("{RESULT_TAG} {kind} {}", text.replace('\n', " | "));
}

fn step(what: &str) {
    println!("SEAM-STEP {what}");
}

fn caught(what: &str, body: impl FnOnce() -> Result<(), Bad>) -> Result<(), Bad> {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let msg = unirun_panic_text(&*payload);
            Err(Bad::Fail(format!("{what} panicked: {msg}")))
        }
    }
}

fn unirun_panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

fn run_cell(ctx: Ctx, way: Way) -> Result<(), Bad> {
    // async-io's global reactor (an epoll, an eventfd and a timerfd) and
    // its `async-io` thread live for the whole process by design (not
    // ours): start both before the baseline. Registering a socket is what
    // creates the reactor; its `block_on` starts the thread.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(async_io::Async::new)
        .map_err(|e| Bad::Fail(format!("async-io warm-up: {e}")))?;
    drop(socket);
    async_io::block_on(async_io::Timer::after(Duration::from_millis(1)));
    match ctx {
        Ctx::SigchldIgnored => set_disposition(libc::SIGCHLD, libc::SIG_IGN),
        Ctx::SigpipeDefault => set_disposition(libc::SIGPIPE, libc::SIG_DFL),
        Ctx::NoNewThreads if is_root() => drop_privileges()?,
        _ => {}
    }
    let base = Snapshot::take();
    // Without `init()` under `SIGPIPE`: the pool's workers are then this
    // process's own children, as in issue 19 item 5's program.
    if ctx != Ctx::SigpipeDefault {
        step("init");
        unirun::process::init();
    }
    if ctx == Ctx::NoNewThreads {
        limit_tasks()?;
    }
    let outcome = caught(way.name(), || in_context(ctx, way));
    step("reset");
    // With no new threads, only the outcome of the way is asked for: the
    // teardown may legitimately need a thread it cannot get, and reports
    // through its own panic below if it breaks.
    let teardown = caught("the final reset()", || {
        unirun::reset();
        Ok(())
    });
    step("leak check");
    let leaks = probe::leaks_since(&base);
    match (outcome, teardown, leaks) {
        (Err(Bad::Fail(text)), _, _) => Err(Bad::Fail(text)),
        (Err(Bad::Skip(text)), _, _) => Err(Bad::Skip(text)),
        (_, Err(bad), _) => Err(bad),
        (_, _, Some(leak)) => Err(Bad::Fail(format!("leaked after reset(): {leak}"))),
        (outcome, Ok(()), None) => outcome,
    }
}

fn in_context(ctx: Ctx, way: Way) -> Result<(), Bad> {
    match ctx {
        Ctx::Plain | Ctx::Gil | Ctx::SigchldIgnored | Ctx::SigpipeDefault | Ctx::NoNewThreads => {
            step("way");
            ways::run(way, ctx)
        }
        Ctx::Forked => {
            step("way in the parent");
            warm_up(way, ctx)?;
            step("way in a forked child");
            let options = ProcessOptions::default().timeout(FORKED_LIMIT);
            let child = unirun::to_process_with(options, move || -> Result<(), (bool, String)> {
                caught(way.name(), || ways::run(way, ctx)).map_err(|bad| match bad {
                    Bad::Typed(text) => (false, text),
                    Bad::Fail(text) | Bad::Skip(text) => (true, text),
                })
            });
            match child.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err((false, text))) => Err(Bad::Typed(format!("in the child: {text}"))),
                Ok(Err((true, text))) => Err(Bad::Fail(format!("in the child: {text}"))),
                Err(err) if err.is_timeout() => Err(Bad::Fail(format!(
                    "the forked child hung (killed after {FORKED_LIMIT:?}): {err}"
                ))),
                Err(err) => Err(Bad::Fail(format!("the forked child failed: {err}"))),
            }
        }
        Ctx::AfterReset => {
            step("way before reset()");
            warm_up(way, ctx)?;
            let in_flight = ways::start(way, true);
            step("reset()");
            unirun::reset();
            step("join the work in flight across reset()");
            // A reset cancels what the old pool had not started (see its
            // docs): cancelled or the value, nothing else.
            let across = in_flight.map_or(Ok(()), |join| join());
            step("way after reset()");
            ways::run(way, ctx)?;
            across
        }
        Ctx::AfterConfigure => {
            step("way before configure()");
            warm_up(way, ctx)?;
            // Issue 19 item 1: work still in flight when `configure`
            // replaces the shared default must finish, and `configure`
            // must return.
            let in_flight = ways::start(way, false);
            step("configure()");
            unirun::configure(RuntimeConfig::default().max_workers(2))
                .map_err(|e| Bad::Fail(format!("configure(max_workers(2)) refused: {e}")))?;
            step("join the work in flight across configure()");
            in_flight.map_or(Ok(()), |join| join())?;
            step("way after configure()");
            ways::run(way, ctx)
        }
        Ctx::DroppedRuntime => {
            step("meet a tokio runtime");
            meet_a_runtime_and_drop_it()?;
            step("way after the runtime dropped");
            ways::run(way, ctx)
        }
    }
}

/// The first run of the way, before the context changes: it must work.
fn warm_up(way: Way, ctx: Ctx) -> Result<(), Bad> {
    ways::run(way, ctx).map_err(|bad| match bad {
        Bad::Typed(text) | Bad::Fail(text) | Bad::Skip(text) => {
            Bad::Fail(format!("before the context change: {text}"))
        }
    })
}

/// `unirun::spawn` inside a multi-thread runtime (the shared default may
/// take it as its reactor), a tokio timer in that task, then the runtime
/// drops: what consecutive `#[tokio::test]`s in one binary do.
fn meet_a_runtime_and_drop_it() -> Result<(), Bad> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Bad::Fail(format!("tokio runtime: {e}")))?;
    let one = rt.block_on(async {
        unirun::spawn(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            1
        })
        .await
    });
    drop(rt);
    match one {
        Ok(1) => Ok(()),
        other => Err(Bad::Fail(format!("inside the runtime: {other:?}"))),
    }
}

/// Sets `signal`'s disposition to `SIG_IGN` or `SIG_DFL`, as a host
/// program would before unirun runs.
fn set_disposition(signal: libc::c_int, disposition: libc::sighandler_t) {
    // SAFETY: SIG_IGN and SIG_DFL install no handler code; the cell's
    // process is its own, nothing else in it depends on the old setting.
    unsafe { libc::signal(signal, disposition) };
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Root is exempt from `RLIMIT_NPROC`: become `nobody` (uid/gid 65534),
/// and stay readable in `/proc/self` (a uid change clears "dumpable").
fn drop_privileges() -> Result<(), Bad> {
    // SAFETY: setgid/setuid/prctl take plain integers; glibc applies the
    // id change to every thread of the process.
    let ok = unsafe {
        libc::setgid(65534) == 0
            && libc::setuid(65534) == 0
            && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(Bad::Fail(format!(
            "cannot become an unprivileged user to make thread creation fail: {}",
            std::io::Error::last_os_error()
        )))
    }
}

/// `RLIMIT_NPROC` 0: every new thread or process of this uid is refused
/// (`EAGAIN`) from now on.
fn limit_tasks() -> Result<(), Bad> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass; it affects this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &zero) } != 0 {
        return Err(Bad::Skip(format!(
            "setrlimit(RLIMIT_NPROC, 0) refused: {}",
            std::io::Error::last_os_error()
        )));
    }
    // A user with CAP_SYS_RESOURCE or CAP_SYS_ADMIN is exempt.
    match std::thread::Builder::new().spawn(|| ()) {
        Err(_) => Ok(()),
        Ok(thread) => {
            let _ = thread.join();
            Err(Bad::Skip(
                "RLIMIT_NPROC is not enforced for this user (a capability exempts it)".into(),
            ))
        }
    }
}
