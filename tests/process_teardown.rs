//! Process calls across teardown and limits: a call nobody joins yet never
//! holds up `configure`, `reset` or a gil-mode wait; a child's output is
//! capped; `memory_limit` is headroom above what the child inherits. Every
//! test changes process-wide state, so each re-runs this binary as a fresh
//! process, under the watchdog.
#![cfg(all(unix, feature = "process-backend"))]

mod common;

use std::io::{Read, Write};

use unirun::RuntimeConfig;

use common::{in_child_process, watchdog_this_test};

fn add_ten(x: u64) -> u64 {
    x + 10
}

/// A joined call, then one left unjoined across `teardown`; the unjoined
/// one's handle still gives its result once `teardown` returned.
fn unjoined_call_survives(teardown: fn()) {
    let executor = unirun::get_executor();
    assert_eq!(executor.call(add_ten, 0).join().unwrap(), 10);
    let pending = executor.call(add_ten, 1);
    teardown();
    assert_eq!(pending.join().unwrap(), 11);
}

fn reconfigure() {
    unirun::configure(RuntimeConfig::default().max_workers(2)).unwrap();
}

#[test]
fn configure_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result() {
    if !in_child_process(
        "configure_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result",
    ) {
        return;
    }
    watchdog_this_test(|| unjoined_call_survives(reconfigure));
}

#[test]
fn reset_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result() {
    if !in_child_process(
        "reset_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result",
    ) {
        return;
    }
    watchdog_this_test(|| unjoined_call_survives(unirun::reset));
}

#[test]
fn in_gil_mode_configure_and_reset_return_while_a_process_call_is_unjoined() {
    if !in_child_process("in_gil_mode_configure_and_reset_return_while_a_process_call_is_unjoined")
    {
        return;
    }
    // SAFETY-free: set before any unirun state is read, in a child process
    // running this test alone.
    std::env::set_var("UNIRUN_THREAD_MODE", "gil");
    watchdog_this_test(|| {
        unjoined_call_survives(reconfigure);
        unjoined_call_survives(unirun::reset);
    });
}

/// Two named pipes in a fresh directory, through which a call running in
/// a pool worker (another process) says it started and is let go by the
/// test; removed with the directory when dropped.
struct Gate {
    dir: std::path::PathBuf,
}

impl Gate {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("unirun-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        for fifo in ["started", "release"] {
            let path = std::ffi::CString::new(dir.join(fifo).into_os_string().into_encoded_bytes())
                .unwrap();
            // SAFETY: `path` is a NUL-terminated string that lives across
            // the call.
            let rc = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        }
        Self { dir }
    }

    /// The argument of [`blocked_until_released`].
    fn paths(&self) -> (String, String) {
        let path = |fifo: &str| self.dir.join(fifo).to_str().unwrap().to_string();
        (path("started"), path("release"))
    }

    /// Returns once the call runs (it wrote its byte).
    fn wait_started(&self) {
        let mut byte = [0u8];
        std::fs::File::open(self.dir.join("started"))
            .unwrap()
            .read_exact(&mut byte)
            .unwrap();
    }

    /// Lets the call go on, giving it `byte`.
    fn release(&self, byte: u8) {
        // Opening blocks until the call opens its end: it is waiting there.
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("release"))
            .unwrap()
            .write_all(&[byte])
            .unwrap();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs in a pool worker: says it started, then cannot go on until the
/// test opens the release pipe and writes a byte; returns it plus 40.
fn blocked_until_released((started, release): (String, String)) -> u64 {
    std::fs::write(started, [1]).unwrap();
    let mut byte = [0u8];
    std::fs::File::open(release)
        .unwrap()
        .read_exact(&mut byte)
        .unwrap();
    u64::from(byte[0]) + 40
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether this process has no child processes left, not even zombies.
fn no_children() -> bool {
    // SAFETY: a null status pointer is allowed; WNOHANG never blocks.
    let rc = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// A call that is provably still running in its worker across
/// `teardown`: `teardown` returns before the test lets the call go on,
/// the handle then gives the call's result, and the worker is reaped and
/// its pipes closed by then.
fn a_running_call_outlives(name: &str, teardown: fn()) {
    let gate = Gate::new(name);
    let executor = unirun::get_executor();
    // A worker is started and idle: the next call is sent at once.
    assert_eq!(executor.call(add_ten, 0).join().unwrap(), 10);
    let fds = open_fds();
    let running = executor.call(blocked_until_released, gate.paths());
    gate.wait_started();
    // The call cannot end before `release` below: a teardown that waited
    // for it would never return (the watchdog says so).
    teardown();
    assert!(!running.is_finished());
    gate.release(2);
    assert_eq!(running.join().unwrap(), 42);
    // Its worker was killed and reaped before the result was handed over,
    // and nothing of the retired pool keeps a descriptor.
    assert!(no_children(), "a worker is left unreaped");
    assert!(
        open_fds() <= fds,
        "{} descriptors, {fds} before",
        open_fds()
    );
}

#[test]
fn configure_returns_while_a_process_call_runs_and_the_call_still_gives_its_result() {
    if !in_child_process(
        "configure_returns_while_a_process_call_runs_and_the_call_still_gives_its_result",
    ) {
        return;
    }
    watchdog_this_test(|| a_running_call_outlives("configure", reconfigure));
}

#[test]
fn reset_returns_while_a_process_call_runs_and_the_call_still_gives_its_result() {
    if !in_child_process(
        "reset_returns_while_a_process_call_runs_and_the_call_still_gives_its_result",
    ) {
        return;
    }
    watchdog_this_test(|| a_running_call_outlives("reset", unirun::reset));
}

#[test]
fn in_gil_mode_configure_and_reset_return_while_a_process_call_runs() {
    if !in_child_process("in_gil_mode_configure_and_reset_return_while_a_process_call_runs") {
        return;
    }
    // Set before any unirun state is read, in a child process running this
    // test alone.
    std::env::set_var("UNIRUN_THREAD_MODE", "gil");
    watchdog_this_test(|| {
        a_running_call_outlives("gil-configure", reconfigure);
        a_running_call_outlives("gil-reset", unirun::reset);
    });
}

/// The most this process has had resident (`VmHWM`), in bytes.
fn peak_resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// The size of the panic message of the children below.
const HUGE: usize = 256 << 20;

/// Panics with a `len`-byte message (without the hook printing it all).
fn panic_with_huge_message(len: usize) -> u8 {
    std::panic::resume_unwind(Box::new("x".repeat(len)))
}

/// The message is cut to the cap and says how much was cut.
fn assert_capped(err: &unirun::JoinError) {
    let message = err.panic_message().expect("a panic");
    let cap = unirun::process::MAX_PANIC_MESSAGE;
    assert!(message.len() < cap + 100, "{} bytes kept", message.len());
    let marker = format!("... [truncated: {} of {HUGE} bytes cut]", HUGE - cap);
    assert!(message.ends_with(&marker), "{}", &message[cap..]);
}

#[test]
fn a_child_panicking_with_a_huge_message_gives_a_capped_error_without_the_parent_holding_it() {
    if !in_child_process(
        "a_child_panicking_with_a_huge_message_gives_a_capped_error_without_the_parent_holding_it",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let before = peak_resident();
        // A forked child per call.
        let err = unirun::to_process(|| panic_with_huge_message(HUGE))
            .join()
            .unwrap_err();
        assert_capped(&err);
        // A pool worker, which keeps serving afterwards.
        let executor = unirun::get_executor();
        let err = executor
            .call(panic_with_huge_message, HUGE)
            .join()
            .unwrap_err();
        assert_capped(&err);
        assert_eq!(executor.call(add_ten, 1).join().unwrap(), 11);
        // The children built the message; the parent never held even one
        // copy of it (it used to hold three).
        let grown = peak_resident().saturating_sub(before);
        assert!(
            grown < HUGE as u64 / 4,
            "the parent's peak grew by {grown} bytes"
        );
    });
}

/// Reserves `bytes` of address space in this process (no memory behind
/// it), as a runtime or many thread stacks do.
fn reserve_address_space(bytes: usize) {
    // SAFETY: a fresh anonymous mapping at an address the kernel picks,
    // never accessed (PROT_NONE) and never unmapped: it cannot alias
    // anything.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(at, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
}

#[test]
fn the_memory_limit_is_headroom_above_what_a_large_parent_already_mapped() {
    if !in_child_process("the_memory_limit_is_headroom_above_what_a_large_parent_already_mapped") {
        return;
    }
    watchdog_this_test(|| {
        reserve_address_space(1 << 30);
        let options = unirun::process::ProcessOptions::default().memory_limit(512 << 20);
        // Touched, so it is really allocated.
        let fits = || {
            std::hint::black_box(vec![1u8; 64 << 20])
                .iter()
                .map(|&b| u64::from(b))
                .sum::<u64>()
        };
        let sum = unirun::to_process_with(options, fits).join().unwrap();
        assert_eq!(sum, 64 << 20);
        // Over the headroom: a typed error, not a hang.
        let too_much = || std::hint::black_box(vec![1u8; 1 << 30]).len();
        let err = unirun::to_process_with(options, too_much)
            .join()
            .unwrap_err();
        assert_eq!(err.signal_name(), Some("SIGABRT"), "{err}");
        // The same for a scope's pool workers.
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Processes)
            .max_workers(1)
            .process_options(options)
            .build()
            .unwrap();
        assert_eq!(run.call(alloc_and_sum, 64 << 20).join().unwrap(), 64 << 20);
        let err = run.call(alloc_and_sum, 1 << 30).join().unwrap_err();
        assert_eq!(err.signal_name(), Some("SIGABRT"), "{err}");
    });
}

fn alloc_and_sum(bytes: usize) -> u64 {
    std::hint::black_box(vec![1u8; bytes])
        .iter()
        .map(|&b| u64::from(b))
        .sum()
}

fn my_pid(_: ()) -> u32 {
    std::process::id()
}

#[test]
fn a_scope_built_with_force_threads_runs_its_process_work_on_threads_and_says_so() {
    if !in_child_process(
        "a_scope_built_with_force_threads_runs_its_process_work_on_threads_and_says_so",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let me = std::process::id();
        let run = unirun::Run::builder()
            .name("pinned")
            .config(RuntimeConfig::default().force_threads(true))
            .build()
            .unwrap();
        for (what, pid) in [
            (
                "to_process",
                run.to_process(std::process::id).join().unwrap(),
            ),
            ("call", run.call(my_pid, ()).join().unwrap()),
        ] {
            assert_eq!(pid, me, "{what} forked");
            let trace = unirun::last_decision().expect("a decision");
            assert_eq!(trace.requested(), unirun::Flavor::Processes, "{trace}");
            assert_eq!(trace.resolved(), unirun::Flavor::Threads, "{trace}");
            assert_eq!(trace.name(), Some("pinned"), "{trace}");
            assert!(trace.to_string().contains("forced"), "{trace}");
        }
        // On the scope's own lane, as one of its tasks.
        let lane = run.to_process(|| std::thread::current().name().map(String::from));
        assert!(lane
            .join()
            .unwrap()
            .unwrap()
            .starts_with("pinned-blocking-"));
        // Other scopes still fork.
        let other = unirun::Run::builder().name("free").build().unwrap();
        assert_ne!(other.to_process(std::process::id).join().unwrap(), me);
    });
}
