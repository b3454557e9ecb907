//! Seams between the forked-process backend and the host process: the
//! fork server's lifetime while forked children live, and the host's
//! `SIGCHLD` and `SIGPIPE` dispositions. Every test runs in a fresh child
//! process of this binary (they start fork servers, change signal
//! dispositions or reset the shared default) under a watchdog.
#![cfg(all(unix, feature = "process-backend"))]

mod common;

use std::os::fd::{AsFd, OwnedFd};

use unirun::process::ProcessOptions;
use unirun::{Flavor, Run};
use unirun_platform::process as sys;

use common::{in_child_process, watchdog_this_test};

/// A child that says it started, then blocks until the test releases it:
/// while the test holds `release`, the child is provably still running.
struct Gate {
    started: OwnedFd,
    release: OwnedFd,
    /// The child's ends.
    child_started: OwnedFd,
    child_release: OwnedFd,
}

impl Gate {
    fn new() -> Self {
        let (started, child_started) = sys::pipe().unwrap();
        let (child_release, release) = sys::pipe().unwrap();
        Self {
            started,
            release,
            child_started,
            child_release,
        }
    }

    /// The closure the child runs: signal, block on the release pipe, 7.
    fn body(&self) -> impl FnOnce() -> u8 + Send + 'static {
        let started = self.child_started.try_clone().unwrap();
        let release = self.child_release.try_clone().unwrap();
        move || {
            sys::write_all(started.as_fd(), b"s").unwrap();
            let mut byte = [0u8; 1];
            // Ends only when the test writes its byte.
            assert_eq!(
                sys::read_until(release.as_fd(), &mut byte, None).unwrap(),
                Some(1)
            );
            7
        }
    }

    fn wait_started(&self) {
        let mut byte = [0u8; 1];
        assert_eq!(
            sys::read_until(self.started.as_fd(), &mut byte, None).unwrap(),
            Some(1)
        );
    }

    fn open(&self) {
        sys::write_all(self.release.as_fd(), b"r").unwrap();
    }
}

fn no_timeout() -> ProcessOptions {
    ProcessOptions::default().timeout(None)
}

/// Defect (issue 19, item 2): children forked after `init()` inherited the
/// parent's end of the fork server's socket, so the server never saw end
/// of file and `shutdown()` waited for the child's whole run.
#[test]
fn process_shutdown_returns_while_a_to_process_child_still_runs() {
    if !in_child_process("process_shutdown_returns_while_a_to_process_child_still_runs") {
        return;
    }
    watchdog_this_test(|| {
        assert!(unirun::process::init());
        let gate = Gate::new();
        let handle = unirun::to_process_with(no_timeout(), gate.body());
        gate.wait_started();
        // Returns although the child blocks until `open` below.
        unirun::process::shutdown();
        gate.open();
        assert_eq!(handle.join().unwrap(), 7);
    });
}

#[test]
fn reset_returns_while_a_scopes_process_child_still_runs() {
    if !in_child_process("reset_returns_while_a_scopes_process_child_still_runs") {
        return;
    }
    watchdog_this_test(|| {
        assert!(unirun::process::init());
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let gate = Gate::new();
        let handle = run.to_process_with(no_timeout(), gate.body());
        gate.wait_started();
        // The scope is not the shared default: reset leaves its child alone
        // and still returns at once.
        unirun::reset();
        gate.open();
        assert_eq!(handle.join().unwrap(), 7);
        run.shutdown();
    });
}

#[test]
fn process_shutdown_returns_while_a_fork_call_child_still_runs() {
    if !in_child_process("process_shutdown_returns_while_a_fork_call_child_still_runs") {
        return;
    }
    watchdog_this_test(|| {
        assert!(unirun::process::init());
        let gate = Gate::new();
        let body = gate.body();
        let caller = std::thread::spawn(move || unirun_process::fork_call(&no_timeout(), body));
        gate.wait_started();
        unirun::process::shutdown();
        unirun::reset();
        gate.open();
        assert_eq!(caller.join().unwrap().unwrap(), 7);
    });
}

/// How many pidfds this process holds open.
fn open_pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.to_string_lossy().contains("pidfd"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Review fault: a forked child closed its copy of the fork server's
/// socket but kept the server's pidfd open for its whole run (every
/// `fork_call` child and pool worker). A child holds no pidfd of ours:
/// nothing in it can signal or reap the server.
#[test]
fn a_fork_call_child_does_not_inherit_the_fork_servers_pidfd() {
    if !in_child_process("a_fork_call_child_does_not_inherit_the_fork_servers_pidfd") {
        return;
    }
    watchdog_this_test(|| {
        assert!(unirun::process::init());
        // Only meaningful where the server has a pidfd (Linux 5.3).
        let parents = open_pidfds();
        let in_child = unirun_process::fork_call(&no_timeout(), open_pidfds).unwrap();
        unirun::process::shutdown();
        assert_eq!(in_child, 0, "the parent holds {parents}");
    });
}

/// The worker's own pid.
fn worker_pid(_: ()) -> i32 {
    sys::getpid()
}

fn double(x: u64) -> u64 {
    x * 2
}

/// The state letter of process `pid` in `/proc/<pid>/stat` (`R`, `S`,
/// `T` for stopped, `Z` for a zombie...), or `None` once it is gone.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn has_ended(pid: i32) -> bool {
    matches!(process_state(pid), None | Some('Z'))
}

/// Kills worker `pid` from outside, as the OOM killer would, and waits
/// until it has ended (a kernel event with nothing to wait on).
fn kill_from_outside(pid: i32) {
    sys::kill(pid, libc::SIGKILL).unwrap();
    common::wait_until(|| has_ended(pid));
}

/// `SIGPIPE` back at its default, as a C host or a daemon may keep it
/// (Rust's runtime ignores it before `main`).
fn default_sigpipe() {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// A call to a worker that was killed while idle: a typed error or a
/// value, never a `SIGPIPE` to this process; the next call gets a new one.
fn a_dead_idle_worker_is_survived(call: impl Fn(u64) -> Result<u64, unirun::JoinError>, pid: i32) {
    kill_from_outside(pid);
    match call(4) {
        Ok(value) => assert_eq!(value, 8),
        Err(err) => {
            assert!(err.is_transport(), "{err}");
            assert!(err.to_string().contains("gone before the request"), "{err}");
        }
    }
    assert_eq!(call(5).unwrap(), 10);
}

/// Defect (issue 19, item 5): with `SIGPIPE` at its default, the call
/// after an idle worker was killed killed this process with signal 13.
#[test]
fn a_pool_call_to_a_killed_idle_worker_never_raises_sigpipe() {
    if !in_child_process("a_pool_call_to_a_killed_idle_worker_never_raises_sigpipe") {
        return;
    }
    default_sigpipe();
    watchdog_this_test(|| {
        let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        let pid = pool.call(worker_pid, ()).unwrap();
        a_dead_idle_worker_is_survived(|x| pool.call(double, x), pid);
        assert_eq!(pool.started(), 2);
    });
}

#[test]
fn a_scope_call_to_a_killed_idle_worker_never_raises_sigpipe() {
    if !in_child_process("a_scope_call_to_a_killed_idle_worker_never_raises_sigpipe") {
        return;
    }
    default_sigpipe();
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(1)
            .build()
            .unwrap();
        let pid = run.call(worker_pid, ()).join().unwrap();
        // The worker is idle: the next call is written by this thread.
        a_dead_idle_worker_is_survived(|x| run.call(double, x).join(), pid);
        run.shutdown();
    });
}

#[test]
fn a_server_workers_death_never_raises_sigpipe() {
    if !in_child_process("a_server_workers_death_never_raises_sigpipe") {
        return;
    }
    default_sigpipe();
    watchdog_this_test(|| {
        assert!(unirun::process::init());
        let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        assert!(
            pool.origin().starts_with("fork server"),
            "{}",
            pool.origin()
        );
        let pid = pool.call(worker_pid, ()).unwrap();
        a_dead_idle_worker_is_survived(|x| pool.call(double, x), pid);
        drop(pool);
        unirun::process::shutdown();
    });
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// A request larger than a pipe holds, to a worker killed while idle: the
/// write waits for room, sees the worker's end instead, and the call is a
/// typed error (never `SIGPIPE`, never a write that waits forever).
#[test]
fn a_large_request_to_a_killed_idle_worker_is_a_typed_error() {
    if !in_child_process("a_large_request_to_a_killed_idle_worker_is_a_typed_error") {
        return;
    }
    default_sigpipe();
    watchdog_this_test(|| {
        let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        let pid = pool.call(worker_pid, ()).unwrap();
        kill_from_outside(pid);
        let err = pool.call(length, vec![7u8; 1 << 20]).unwrap_err();
        assert!(err.is_transport(), "{err}");
        assert!(err.to_string().contains("gone before the request"), "{err}");
        assert_eq!(pool.call(length, vec![7u8; 1 << 20]).unwrap(), 1 << 20);
    });
}

/// Review fault: the disposition was read once and cached, refreshed only
/// at a worker's start. A host that restores `SIGPIPE`'s default after the
/// pool's first call (a C library's init, a daemon's set-up) died of
/// signal 13 on the next call to a killed idle worker; the disposition of
/// the moment of each write counts.
#[test]
fn a_pool_call_after_sigpipe_became_default_mid_run_never_raises_sigpipe() {
    if !in_child_process("a_pool_call_after_sigpipe_became_default_mid_run_never_raises_sigpipe") {
        return;
    }
    watchdog_this_test(|| {
        let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        // First call and worker start with SIGPIPE ignored, as Rust sets it.
        let pid = pool.call(worker_pid, ()).unwrap();
        default_sigpipe();
        a_dead_idle_worker_is_survived(|x| pool.call(double, x), pid);
    });
}

/// `SIGCHLD` ignored, as a daemon or supervisor may set it: the kernel
/// reaps children and discards their exit status.
fn ignore_sigchld() {
    // SAFETY: SIG_IGN is a valid disposition for SIGCHLD.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
}

/// `SIGCHLD` at its default action but with `SA_NOCLDWAIT`: the same
/// effect on children, spelled the other way.
fn no_child_wait() {
    // SAFETY: all-zero is a valid `sigaction` (SIG_DFL, empty mask); the
    // flag only changes how children are reaped.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        action.sa_flags = libc::SA_NOCLDWAIT;
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()),
            0
        );
    }
}

/// Pidfds this process holds (`anon_inode:[pidfd]` in `/proc/self/fd`).
fn pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("pidfd"))
        .count()
}

fn to_process_survives_a_host_that_reaps_children() {
    assert_eq!(unirun::to_process(|| 7u8).join().unwrap(), 7);
    let options = ProcessOptions::default();
    let big = unirun_process::fork_call(&options, || vec![3u8; 1 << 20]).unwrap();
    assert_eq!(big.len(), 1 << 20);
    let err = unirun_process::fork_call(&options, || -> u8 { panic!("bad row") }).unwrap_err();
    assert_eq!(err.panic_message(), Some("bad row"), "{err}");
    // How an abort ended is lost: a typed error that says why, never
    // "waitpid: No child processes".
    let err = unirun_process::fork_call(&options, || -> u8 { std::process::abort() }).unwrap_err();
    assert!(err.is_transport(), "{err}");
    let text = err.to_string();
    assert!(text.contains("ignores SIGCHLD"), "{text}");
    assert!(!text.contains("No child processes"), "{text}");
    assert_eq!(unirun::process::running_children(), 0);
}

/// Defect (issue 19, item 4): with `SIGCHLD` ignored, a fully received
/// result was thrown away as `waitpid: No child processes`.
#[test]
fn to_process_keeps_a_received_result_when_the_host_ignores_sigchld() {
    if !in_child_process("to_process_keeps_a_received_result_when_the_host_ignores_sigchld") {
        return;
    }
    ignore_sigchld();
    watchdog_this_test(to_process_survives_a_host_that_reaps_children);
}

#[test]
fn to_process_keeps_a_received_result_when_the_host_sets_sa_nocldwait() {
    if !in_child_process("to_process_keeps_a_received_result_when_the_host_sets_sa_nocldwait") {
        return;
    }
    no_child_wait();
    watchdog_this_test(to_process_survives_a_host_that_reaps_children);
}

fn abort_worker(_: ()) -> u8 {
    std::process::abort()
}

/// The pid of the worker's parent.
fn worker_parent(_: ()) -> i32 {
    sys::getppid()
}

fn pool_workers_survive_a_host_that_reaps_children() {
    let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
    assert!(
        pool.origin().starts_with("fork server"),
        "{}",
        pool.origin()
    );
    // Its workers are the fork server's children, which keeps their pids
    // (zombies until it reaps them) and their full status whatever this
    // process chose for SIGCHLD.
    assert_ne!(pool.call(worker_parent, ()).unwrap(), sys::getpid());
    let err = pool.call(abort_worker, ()).unwrap_err();
    assert!(err.is_crash(), "{err}");
    assert_eq!(err.signal_name(), Some("SIGABRT"), "{err}");
    assert_eq!(pool.call(double, 4).unwrap(), 8);
    assert_eq!(pool.crashes(), 1);
}

/// Defect (issue 19, item 4): with `SIGCHLD` ignored, a pool worker's
/// `SIGABRT` was reported as "exited without replying".
#[test]
fn a_pool_workers_abort_is_a_sigabrt_crash_when_the_host_ignores_sigchld() {
    if !in_child_process("a_pool_workers_abort_is_a_sigabrt_crash_when_the_host_ignores_sigchld") {
        return;
    }
    ignore_sigchld();
    watchdog_this_test(|| {
        // Without init: a fork server is started for the pool.
        pool_workers_survive_a_host_that_reaps_children();
        assert!(unirun::process::shutdown());
        // With init, whether the host ignored SIGCHLD before or after it.
        assert!(unirun::process::init());
        pool_workers_survive_a_host_that_reaps_children();
        unirun::process::shutdown();
    });
}

#[test]
fn a_pool_workers_abort_is_a_sigabrt_crash_when_the_host_sets_sa_nocldwait() {
    if !in_child_process("a_pool_workers_abort_is_a_sigabrt_crash_when_the_host_sets_sa_nocldwait")
    {
        return;
    }
    no_child_wait();
    watchdog_this_test(|| {
        // The fork server inherits the flag and still keeps its workers'
        // status.
        assert!(unirun::process::init());
        pool_workers_survive_a_host_that_reaps_children();
        assert!(unirun::process::shutdown());
        pool_workers_survive_a_host_that_reaps_children();
        unirun::process::shutdown();
    });
}

fn park_forever() -> u8 {
    loop {
        std::thread::park();
    }
}

fn park_worker(_: ()) -> u8 {
    park_forever()
}

/// Defect (issue 19, item 4): with `SIGCHLD` ignored, a child's pid is
/// free as soon as it ends, and a deadline kill by pid could hit whoever
/// reused it. Now a forked child is signalled through a pidfd opened
/// while it could not have ended (the parent holds one per such child),
/// and pool workers are the fork server's children, whose pids stay
/// theirs until reaped.
#[test]
fn deadline_kills_reach_only_our_children_when_the_host_ignores_sigchld() {
    if !in_child_process("deadline_kills_reach_only_our_children_when_the_host_ignores_sigchld") {
        return;
    }
    ignore_sigchld();
    watchdog_this_test(|| {
        let before = pidfds();
        let gate = Gate::new();
        let handle = unirun::to_process_with(no_timeout(), gate.body());
        gate.wait_started();
        assert_eq!(
            pidfds(),
            before + 1,
            "the running child is held by its pidfd"
        );
        gate.open();
        assert_eq!(handle.join().unwrap(), 7);
        assert_eq!(pidfds(), before, "closed with the call");

        let short = ProcessOptions::default().timeout(std::time::Duration::from_millis(20));
        let err = unirun::to_process_with(short, park_forever)
            .join()
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");

        let pool = unirun::process::ProcessPool::new(1, short);
        let err = pool.call(park_worker, ()).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(pool.call(double, 2).unwrap(), 4, "a new worker serves");

        // A scope's shutdown kills its children through their pidfds too.
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let gate = Gate::new();
        let handle = run.to_process_with(no_timeout(), gate.body());
        gate.wait_started();
        run.shutdown_now();
        assert!(handle.join().unwrap_err().is_cancelled());
        assert_eq!(unirun::process::running_children(), 0);
    });
}

/// A fork server started while another one ran inherited the other's
/// socket end; with `SIGCHLD` ignored (no kill by pid then), stopping the
/// first waited for the second to end.
#[test]
fn shutdown_returns_while_a_second_fork_server_lives_when_the_host_ignores_sigchld() {
    if !in_child_process(
        "shutdown_returns_while_a_second_fork_server_lives_when_the_host_ignores_sigchld",
    ) {
        return;
    }
    ignore_sigchld();
    watchdog_this_test(|| {
        // Without init: a server is started for this pool's workers.
        let first = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(first.call(double, 1).unwrap(), 2);
        drop(first);
        // The init server, kept alive by a pool that has a worker from it.
        assert!(unirun::process::init());
        let second = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(second.call(double, 2).unwrap(), 4);
        // Stops the first server, which must not wait for the second.
        assert!(
            !unirun::process::shutdown(),
            "the second pool holds its server"
        );
        assert_eq!(second.call(double, 3).unwrap(), 6);
        drop(second);
        assert!(unirun::process::shutdown());
    });
}

/// A fork made by other code (here a raw `fork`) also inherits the fork
/// server's socket end; `shutdown` returns anyway, even when the host
/// ignores `SIGCHLD` (the server is killed through its pidfd).
#[test]
fn process_shutdown_returns_while_a_foreign_fork_holds_the_servers_socket() {
    if !in_child_process("process_shutdown_returns_while_a_foreign_fork_holds_the_servers_socket") {
        return;
    }
    ignore_sigchld();
    watchdog_this_test(|| {
        assert!(unirun::process::init());
        let gate = Gate::new();
        // SAFETY: the child calls only write, read and `_exit`
        // (async-signal-safe).
        match unsafe { sys::fork() }.unwrap() {
            sys::Forked::Child => {
                let mut byte = [0u8; 1];
                let _ = sys::write_all(gate.child_started.as_fd(), b"s");
                let _ = sys::read_until(gate.child_release.as_fd(), &mut byte, None);
                sys::exit_now(0)
            }
            sys::Forked::Parent(_) => {}
        }
        gate.wait_started();
        unirun::process::shutdown();
        gate.open();
    });
}

/// A pool whose workers cannot apply its options (a negative nice value
/// without privilege) says so at every call, instead of blaming an outside
/// kill: each new worker exits before it takes the request.
#[test]
fn a_worker_that_cannot_apply_its_options_says_so() {
    if !in_child_process("a_worker_that_cannot_apply_its_options_says_so") {
        return;
    }
    // As root a negative nice is allowed: drop to `nobody` first.
    // SAFETY: geteuid only reads this process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    // SAFETY: setgid/setuid change only this single-purpose test process,
    // before it starts any thread of its own.
    if root && unsafe { libc::setgid(65534) != 0 || libc::setuid(65534) != 0 } {
        println!("skipped: could not drop root privileges");
        return;
    }
    watchdog_this_test(|| {
        let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default().nice(-5));
        for _ in 0..3 {
            let err = pool.call(double, 2).expect_err("the worker cannot start");
            assert!(err.is_transport(), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("could not apply the pool's ProcessOptions"),
                "{text}"
            );
        }
    });
}

/// A worker ended by a signal before it took the request never ran the
/// function: that is not a crash of it (`crashes` stays 0).
#[test]
fn a_worker_signalled_before_it_took_the_request_is_not_a_crash() {
    watchdog_this_test(|| {
        let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
        let pid = pool.call(own_pid, ()).unwrap();
        // Stopped, then sent SIGTERM: it dies when continued, and the
        // request written meanwhile stays unread in the pipe. `kill`
        // returns before the stop takes effect: a worker woken from its
        // read by SIGSTOP but not yet stopped would still take a request
        // written meanwhile (the pipe is readable when it runs again) and
        // die only after, so the request is written once it is stopped.
        sys::kill(pid, libc::SIGSTOP).unwrap();
        common::wait_until(|| process_state(pid) == Some('T'));
        let call = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.call(double, 2))
        };
        sys::kill(pid, libc::SIGTERM).unwrap();
        sys::kill(pid, libc::SIGCONT).unwrap();
        let err = call.join().unwrap().expect_err("the worker died");
        assert!(!err.is_crash(), "{err}");
        assert_eq!(pool.crashes(), 0);
        assert_eq!(pool.call(double, 3).unwrap(), 6);
    });
}

fn own_pid(_: ()) -> sys::Pid {
    std::process::id() as sys::Pid
}
