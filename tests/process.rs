//! The forked-process backend: values, faults, limits, cleanup and
//! lifecycle. Tests that count processes or descriptors, or change global
//! settings, re-run this binary as a fresh process.
#![cfg(all(unix, feature = "process-backend"))]

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use unirun::process::ProcessOptions;
use unirun::{Flavor, JoinError, Run, RuntimeConfig, ThreadMode};
use unirun_platform::process as sys;
use unirun_test_support::{watchdog, watchdog_for, watchdog_this_test};

use common::in_child_process;

fn with_timeout() -> ProcessOptions {
    // Only a safety net against a hang; no test depends on its length.
    ProcessOptions::default().timeout(Duration::from_secs(120))
}

fn crash_with(signal: i32) -> JoinError {
    unirun::to_process_with(with_timeout(), move || -> u32 {
        // Rust's own SIGSEGV handler (stack-overflow detection) ignores a
        // segfault that was sent rather than caused: restore the default.
        // SAFETY: SIG_DFL is a valid disposition for these signals.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
        sys::kill(sys::getpid(), signal).expect("signal self");
        unreachable!("the signal kills the child")
    })
    .join()
    .unwrap_err()
}

/// Never returns (a typed stand-in for a hung child).
fn park_forever() -> u8 {
    loop {
        std::thread::park();
    }
}

/// Never returns, burning CPU.
fn spin_forever() -> u8 {
    loop {
        std::hint::spin_loop();
    }
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

/// Whether process `pid` is gone (or only a zombie nobody reaps).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn values_and_captured_data_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Summary {
        name: String,
        words: Vec<String>,
        total: u64,
    }
    let text = String::from("the quick brown fox");
    let weights: Vec<u64> = (1..=10).collect();
    let summary = unirun::to_process(move || Summary {
        name: "fox".into(),
        words: text.split(' ').map(String::from).collect(),
        total: weights.iter().sum(),
    });
    let summary = unirun::block_on(summary).unwrap();
    assert_eq!(summary.words, ["the", "quick", "brown", "fox"]);
    assert_eq!(summary.total, 55);
    assert_eq!(unirun::to_process(|| ()).join().unwrap(), ());
    let pid = unirun::to_process(std::process::id).join().unwrap();
    assert_ne!(pid, std::process::id());
}

#[test]
fn a_panic_in_the_child_carries_message_and_location() {
    let line = line!() + 1;
    let err = unirun::to_process(|| -> u8 { panic!("bad record {}", 7) })
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("bad record 7"));
    let at = err.panic_location().expect("a location");
    assert!(at.file().ends_with("process.rs"), "{at}");
    assert_eq!(at.line(), line);
    assert!(err.to_string().contains("bad record 7"), "{err}");
}

#[test]
fn signals_are_crashes_with_number_and_name() {
    for (signal, name) in [
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGKILL, "SIGKILL"),
    ] {
        let err = crash_with(signal);
        assert!(err.is_crash(), "{err}");
        assert_eq!(err.signal(), Some(signal));
        assert_eq!(err.signal_name(), Some(name));
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(text.contains(&signal.to_string()), "{text}");
    }
    let abort = unirun::to_process(|| -> u8 { std::process::abort() });
    assert_eq!(abort.join().unwrap_err().signal_name(), Some("SIGABRT"));
}

#[test]
fn a_timeout_kills_and_reaps_the_child() {
    if !in_child_process("a_timeout_kills_and_reaps_the_child") {
        return;
    }
    let options = ProcessOptions::default().timeout(Duration::from_millis(50));
    let err = unirun::to_process_with(options, park_forever)
        .join()
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(no_children());
    assert_eq!(unirun::process::running_children(), 0);
}

#[test]
fn hundred_megabytes_in_and_out() {
    const LEN: usize = 100 << 20;
    let input: Vec<u8> = (0..LEN).map(|i| i as u8).collect();
    let output = unirun::to_process(move || {
        let checksum: u64 = input.iter().map(|&b| u64::from(b)).sum();
        let out: Vec<u8> = input.iter().map(|b| b.wrapping_add(1)).collect();
        (checksum, serde_bytes_like(out))
    });
    let (checksum, ByteBuf(out)) = output.join().unwrap();
    let expected: u64 = (0..LEN).map(|i| u64::from(i as u8)).sum();
    assert_eq!(checksum, expected);
    assert_eq!(out.len(), LEN);
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u8).wrapping_add(1)));
}

/// Bytes serialized as one byte string rather than a sequence of numbers.
#[derive(Debug)]
struct ByteBuf(Vec<u8>);

fn serde_bytes_like(bytes: Vec<u8>) -> ByteBuf {
    ByteBuf(bytes)
}

impl serde::Serialize for ByteBuf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(Visit)
    }
}

#[test]
fn a_child_that_exits_without_a_result_is_a_decode_error() {
    let err = unirun::to_process(|| -> u64 { std::process::exit(0) })
        .join()
        .unwrap_err();
    assert!(err.is_transport(), "{err}");
    assert!(err.to_string().contains("decode"), "{err}");
    assert!(
        err.to_string().contains("without sending a result"),
        "{err}"
    );
}

#[test]
fn a_thousand_calls_leave_no_zombies_fds_or_processes() {
    if !in_child_process("a_thousand_calls_leave_no_zombies_fds_or_processes") {
        return;
    }
    // Start the shared pool and its lane first: they are not leaks.
    assert_eq!(unirun::to_process(|| 1).join().unwrap(), 1);
    let fds = open_fds();
    let handles: Vec<_> = (0..1000u32)
        .map(|i| unirun::to_process(move || i * 2))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i as u32 * 2);
    }
    // Faulty calls clean up too.
    for _ in 0..20 {
        assert!(crash_with(libc::SIGSEGV).is_crash());
        assert!(unirun::to_process(|| -> u8 { panic!("x") }).join().is_err());
    }
    assert!(no_children(), "a child was left unreaped");
    assert_eq!(unirun::process::running_children(), 0);
    assert_eq!(open_fds(), fds, "descriptors leaked");
}

/// Run by `children_die_with_their_parent` as a separate process.
#[test]
fn helper_waits_on_a_sleeping_child() {
    if std::env::var_os("UNIRUN_TEST_HELPER").is_none() {
        return;
    }
    let sleeper = unirun::to_process(|| {
        println!("grandchild={}", std::process::id());
        park_forever()
    });
    sleeper.join().unwrap();
}

#[test]
fn children_die_with_their_parent() {
    let exe = std::env::current_exe().unwrap();
    let mut helper = Command::new(exe)
        .args([
            "--exact",
            "helper_waits_on_a_sleeping_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("UNIRUN_TEST_HELPER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(helper.stdout.take().unwrap());
    let grandchild: i32 = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| {
            line.split_once("grandchild=")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("the helper's child reports its pid");
    assert!(!is_gone(grandchild));
    helper.kill().unwrap();
    helper.wait().unwrap();
    common::wait_until(|| is_gone(grandchild));
}

#[test]
fn shutdown_now_kills_and_reaps_running_children() {
    if !in_child_process("shutdown_now_kills_and_reaps_running_children") {
        return;
    }
    let run = Run::builder().name("forks").build().unwrap();
    let (ready, started) = sys::pipe().unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let started = started.try_clone().unwrap();
            run.to_process_with(with_timeout(), move || {
                sys::write_all(started.as_fd(), b"!").unwrap();
                park_forever()
            })
        })
        .collect();
    drop(started);
    let mut buf = [0u8; 3];
    let mut got = 0;
    while got < 3 {
        got += sys::read_until(ready.as_fd(), &mut buf[got..], None)
            .unwrap()
            .unwrap();
    }
    // The children may report before the parent has listed them: the
    // shutdown kills listed ones, and a call listed after it kills its own.
    run.shutdown_now();
    for handle in handles {
        let err = handle.join().unwrap_err();
        assert!(err.is_cancelled(), "{err}");
    }
    assert!(no_children());
    assert_eq!(unirun::process::running_children(), 0);
}

#[test]
fn unirun_helpers_inside_a_child_run_inline() {
    if !in_child_process("unirun_helpers_inside_a_child_run_inline") {
        return;
    }
    // The shared pool exists in the parent, so the child inherits it.
    assert_eq!(unirun::spawn(async { 0 }).join().unwrap(), 0);
    assert_eq!(unirun::get_executor().call(double, 1).join().unwrap(), 2);
    let total = unirun::to_process_with(with_timeout(), || {
        assert!(unirun::process::in_forked_child());
        let a = unirun::spawn(async { 1 }).join().unwrap();
        let b = unirun::to_thread(|| 2).join().unwrap();
        let c = unirun::to_process(|| 3).join().unwrap();
        let run = Run::builder().name("inner").build().unwrap();
        let d = run.spawn_blocking(|| 4).join().unwrap();
        run.shutdown();
        // The shared process pool's workers are the parent's: the child's
        // call forks a fresh child of its own instead.
        assert_eq!(unirun::get_executor().call(double, 21).join().unwrap(), 42);
        unirun::reset();
        let e = unirun::to_thread(|| 5).join().unwrap();
        a + b + c + d + e
    });
    assert_eq!(total.join().unwrap(), 15);
    assert!(!unirun::process::in_forked_child());
}

#[test]
fn limits_apply_in_the_child() {
    // Address space: a large allocation fails, which aborts the child.
    let options = with_timeout().memory_limit(256 << 20);
    let err = unirun::to_process_with(options, || vec![1u8; 1 << 30].len())
        .join()
        .unwrap_err();
    assert_eq!(err.signal_name(), Some("SIGABRT"), "{err}");
    // CPU time: the kernel stops a spinning child.
    let options = with_timeout().cpu_time_limit(Duration::from_millis(1));
    let err = unirun::to_process_with(options, spin_forever)
        .join()
        .unwrap_err();
    assert!(err.is_crash(), "{err}");
    assert_eq!(err.signal_name(), Some("SIGXCPU"), "{err}");
    // Nice: the child sees its own niceness raised.
    let before = unsafe_nice();
    let after = unirun::to_process_with(with_timeout().nice(5), unsafe_nice)
        .join()
        .unwrap();
    assert_eq!(after, (before + 5).min(19));
}

fn unsafe_nice() -> i32 {
    // SAFETY: getpriority takes plain integers (this process).
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[test]
fn the_scheduler_resolves_to_processes() {
    let run = Run::new(Flavor::Processes).unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Processes);
    assert!(run.trace().parent_threads().is_some_and(|n| n >= 1));
    assert_eq!(run.to_process_with(with_timeout(), || 5).join().unwrap(), 5);
    let config = RuntimeConfig::default()
        .cpu_bound(true)
        .thread_mode(ThreadMode::Gil);
    let run = Run::builder().config(config).build().unwrap();
    if std::env::var_os("UNIRUN_FORCE_THREADS").is_none() {
        assert_eq!(run.trace().resolved(), Flavor::Processes);
    }
    assert!(Flavor::Processes.is_available());
}

/// The "not forced" answer is cached per configuration: a `configure`
/// or `reset` after process calls must still take effect.
#[test]
fn force_threads_applies_after_earlier_process_calls() {
    if !in_child_process("force_threads_applies_after_earlier_process_calls") {
        return;
    }
    let me = std::process::id();
    assert_ne!(unirun::to_process(std::process::id).join().unwrap(), me);
    unirun::configure(RuntimeConfig::default().force_threads(true)).unwrap();
    assert_eq!(unirun::to_process(std::process::id).join().unwrap(), me);
    unirun::configure(RuntimeConfig::default()).unwrap();
    assert_ne!(unirun::to_process(std::process::id).join().unwrap(), me);
    unirun::configure(RuntimeConfig::default().force_threads(true)).unwrap();
    let pid = |_: ()| std::process::id();
    assert_eq!(unirun::get_executor().call(pid, ()).join().unwrap(), me);
    unirun::reset();
    assert_ne!(unirun::to_process(std::process::id).join().unwrap(), me);
}

#[test]
fn force_threads_sends_process_work_to_threads() {
    if !in_child_process("force_threads_sends_process_work_to_threads") {
        return;
    }
    unirun::configure(RuntimeConfig::default().force_threads(true)).unwrap();
    let pid = unirun::to_process(std::process::id).join().unwrap();
    assert_eq!(pid, std::process::id());
    let trace = unirun::last_decision().expect("a decision");
    assert_eq!(trace.requested(), Flavor::Processes);
    assert_eq!(trace.resolved(), Flavor::Threads);
    assert!(trace.to_string().contains("forced"), "{trace}");
    let run = Run::new(Flavor::Processes).unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Threads);
}

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn the_pool_replaces_crashed_and_timed_out_workers() {
    // Every call below must finish within the timeout, a panicking one
    // included (its hook may capture a backtrace on a loaded machine), so
    // it is generous; only `park_forever` reaches it.
    let pool = unirun::process::ProcessPool::new(
        2,
        ProcessOptions::default().timeout(Duration::from_secs(5)),
    );
    assert_eq!(pool.call(double, 21).unwrap(), 42);
    let err = pool.call(common::segfault, ()).unwrap_err();
    assert_eq!(err.signal_name(), Some("SIGSEGV"), "{err}");
    let err = pool.call(|()| park_forever(), ()).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let err = pool
        .call(|x: u8| -> u8 { panic!("bad {x}") }, 7)
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("bad 7"), "{err}");
    let handles: Vec<_> = (0..20)
        .map(|i| pool.spawn_call(&unirun::get_executor(), double, i))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i as u64 * 2);
    }
    assert!(pool.started() <= 2 + 2, "two replacements at most");
}

#[test]
fn the_pool_moves_large_payloads_and_leaves_nothing_behind() {
    if !in_child_process("the_pool_moves_large_payloads_and_leaves_nothing_behind") {
        return;
    }
    fn flip(ByteBuf(bytes): ByteBuf) -> ByteBuf {
        ByteBuf(bytes.into_iter().map(|b| !b).collect())
    }
    let fds = open_fds();
    let pool = unirun::process::ProcessPool::new(1, ProcessOptions::default());
    let ByteBuf(back) = pool.call(flip, ByteBuf(vec![0x0f; 32 << 20])).unwrap();
    assert_eq!(back.len(), 32 << 20);
    assert!(back.iter().all(|&b| b == 0xf0));
    for i in 0..1000 {
        assert_eq!(pool.call(double, i).unwrap(), i * 2);
    }
    drop(pool);
    assert!(no_children(), "a worker was left unreaped");
    assert_eq!(open_fds(), fds, "descriptors leaked");
}

fn signal_then_hang(fd: i32) -> u8 {
    // SAFETY: `fd` is the write end of a pipe the test created before the
    // worker was forked; one byte from a live buffer.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
    park_forever()
}

#[test]
fn a_processes_scope_calls_its_workers_and_shutdown_now_kills_them() {
    if !in_child_process("a_processes_scope_calls_its_workers_and_shutdown_now_kills_them") {
        return;
    }
    // The pipe exists before the worker forks, so the worker has it too.
    let (ready, started) = sys::pipe().unwrap();
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(2)
        .build()
        .unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Processes);
    assert_eq!(run.call(double, 4).join().unwrap(), 8);
    use std::os::fd::AsRawFd;
    let stuck = run.call(signal_then_hang, started.as_raw_fd());
    let mut byte = [0u8; 1];
    assert_eq!(
        sys::read_until(ready.as_fd(), &mut byte, None).unwrap(),
        Some(1)
    );
    run.shutdown_now();
    assert!(stuck.join().unwrap_err().is_cancelled());
    assert!(no_children(), "the scope's workers were reaped");
}

fn reply_watchers() -> usize {
    common::thread_names()
        .iter()
        .filter(|name| *name == "unirun-replies")
        .count()
}

/// Calls awaited from async tasks are read by the scope pool's one reply
/// watcher thread, not by a blocking-lane thread each; the scope's
/// shutdown, waiting or not, ends that thread, and a call it waits for
/// when the scope shuts down now is cancelled.
#[test]
fn awaited_calls_are_read_by_one_watcher_that_ends_with_the_scope() {
    if !common::lists_threads() {
        return;
    }
    if !in_child_process("awaited_calls_are_read_by_one_watcher_that_ends_with_the_scope") {
        return;
    }
    watchdog_for("awaited calls", Duration::from_secs(120), || {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(2)
            .build()
            .unwrap();
        let calls = run.handle();
        let tasks: Vec<_> = (0..300u64)
            .map(|i| {
                let calls = calls.clone();
                run.spawn(async move { calls.call(double, i).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.join().unwrap().unwrap(), 2 * i as u64);
        }
        // The watcher names itself once it first runs, which under load
        // may come after every reply was read where it arrived: wait for
        // the name, then check there is only one.
        common::wait_until(|| reply_watchers() >= 1);
        assert_eq!(reply_watchers(), 1);
        run.shutdown();
        assert_eq!(reply_watchers(), 0, "joined by the shutdown");

        // The pipe exists before the worker forks, so the worker has it too.
        let (ready, started) = sys::pipe().unwrap();
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(1)
            .build()
            .unwrap();
        assert_eq!(run.call(double, 4).join().unwrap(), 8);
        use std::os::fd::AsRawFd;
        let stuck = run.call(signal_then_hang, started.as_raw_fd());
        let mut byte = [0u8; 1];
        assert_eq!(
            sys::read_until(ready.as_fd(), &mut byte, None).unwrap(),
            Some(1)
        );
        // Asked about instead of joined: the watcher waits for its reply.
        assert!(!stuck.is_finished());
        // A new thread names itself once it runs.
        common::wait_until(|| reply_watchers() == 1);
        let waiter = run.spawn(stuck);
        run.shutdown_now();
        match waiter.join() {
            Ok(out) => assert!(out.unwrap_err().is_cancelled()),
            Err(err) => assert!(err.is_cancelled(), "{err}"),
        }
        assert_eq!(reply_watchers(), 0, "joined by the shutdown");
        assert!(no_children(), "the scope's workers were reaped");
    });
}

#[test]
fn init_starts_a_fork_server_for_pool_workers() {
    if !in_child_process("init_starts_a_fork_server_for_pool_workers") {
        return;
    }
    assert!(unirun::process::init());
    assert!(unirun::process::init(), "a second init is a no-op");
    let pool = unirun::process::ProcessPool::new(1, with_timeout());
    assert!(
        pool.origin().starts_with("fork server"),
        "{}",
        pool.origin()
    );
    assert_eq!(pool.call(double, 5).unwrap(), 10);
    let err = pool.call(common::segfault, ()).unwrap_err();
    assert_eq!(err.signal_name(), Some("SIGSEGV"), "{err}");
    assert_eq!(pool.call(double, 6).unwrap(), 12);
    assert_eq!(pool.started(), 2);
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(run.call(double, 7).join().unwrap(), 14);
    run.shutdown();
}

#[test]
fn reset_kills_the_shared_executors_children() {
    if !in_child_process("reset_kills_the_shared_executors_children") {
        return;
    }
    let (ready, started) = sys::pipe().unwrap();
    let stuck = unirun::to_process(move || {
        sys::write_all(started.as_fd(), b"!").unwrap();
        park_forever()
    });
    let mut byte = [0u8; 1];
    assert_eq!(
        sys::read_until(ready.as_fd(), &mut byte, None).unwrap(),
        Some(1)
    );
    unirun::reset();
    assert!(stuck.join().unwrap_err().is_cancelled());
    assert!(no_children());
}

/// Sleeps `secs` seconds in the worker (the workload a timeout cuts short).
fn sleep_for(secs: u64) -> u8 {
    std::thread::sleep(Duration::from_secs(secs));
    1
}

#[test]
fn a_processes_scope_trace_says_its_pool_comes_from_init() {
    if !in_child_process("a_processes_scope_trace_says_its_pool_comes_from_init") {
        return;
    }
    assert!(unirun::process::init());
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(run.call(double, 21).join().unwrap(), 42);
    let trace = run.trace();
    let line = trace.to_string();
    assert!(
        line.contains("; process pool: fork server (unirun::process::init"),
        "{line}"
    );
    assert!(
        trace
            .process_pool()
            .is_some_and(|origin| origin.starts_with("fork server")),
        "{line}"
    );
    let json = serde_json::to_value(trace).unwrap();
    assert!(
        json["process_pool"]
            .as_str()
            .is_some_and(|origin| origin.contains("unirun::process::init")),
        "{json}"
    );
    run.shutdown();
}

#[test]
fn a_processes_scope_trace_says_its_pool_forks_directly_without_init() {
    if !in_child_process("a_processes_scope_trace_says_its_pool_forks_directly_without_init") {
        return;
    }
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(run.call(double, 21).join().unwrap(), 42);
    let line = run.trace().to_string();
    assert!(
        line.contains("; process pool: forked directly (no unirun::process::init; the parent had "),
        "{line}"
    );
    assert!(line.contains(" threads)"), "{line}");
    let json = serde_json::to_value(run.trace()).unwrap();
    assert!(
        json["process_pool"]
            .as_str()
            .is_some_and(|origin| origin.starts_with("forked directly")),
        "{json}"
    );
    // A scope that did not resolve to processes has no pool to describe.
    let threads = Run::new(Flavor::Threads).unwrap();
    assert_eq!(threads.trace().process_pool(), None);
    assert!(!threads.trace().to_string().contains("process pool"));
    run.shutdown();
}

#[test]
fn a_scope_timeout_kills_a_sleeping_closure_and_pool_call() {
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(1)
        // Long enough for the quick call below on a loaded machine.
        .process_options(ProcessOptions::default().timeout(Duration::from_secs(10)))
        .build()
        .unwrap();
    let err = run.to_process(|| sleep_for(600)).join().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    let err = run.call(sleep_for, 600).join().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The timed-out worker was replaced.
    assert_eq!(run.call(double, 4).join().unwrap(), 8);
    run.shutdown();
}

#[test]
fn per_call_options_replace_the_scope_options() {
    let run = Run::builder()
        .process_options(
            ProcessOptions::default()
                .timeout(Duration::from_secs(5))
                .nice(3),
        )
        .build()
        .unwrap();
    let before = unsafe_nice();
    // The scope's options apply to calls without their own.
    assert_eq!(
        run.to_process(unsafe_nice).join().unwrap(),
        (before + 3).min(19)
    );
    // Per-call options replace them as a whole: no nice, and a timeout long
    // enough for a child that outlives the scope's.
    let options = with_timeout();
    let niceness = run
        .to_process_with(options, move || {
            sleep_for(6);
            unsafe_nice()
        })
        .join()
        .unwrap();
    assert_eq!(niceness, before);
    let niceness = run
        .handle()
        .to_process_with(with_timeout().nice(1), unsafe_nice)
        .join()
        .unwrap();
    assert_eq!(niceness, (before + 1).min(19));
    run.shutdown();
}

/// Defect: a parent thread inside `unirun::capabilities()` (holding the
/// global state lock) at the fork left that lock held in the child, and the
/// child's `unirun::spawn(..).join()` hung (20-29 of 100 calls). Now no
/// unirun lock is held across a fork.
#[test]
fn a_child_uses_unirun_while_a_parent_thread_holds_its_state() {
    watchdog_for(
        "100 forks against a busy global state",
        Duration::from_secs(600),
        || {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let busy = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rounds = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let caps = unirun::capabilities();
                        assert!(caps.cpu_budget() >= 1);
                        let _ = unirun::last_decision();
                        rounds += 1;
                    }
                    rounds
                })
            };
            // Make sure the loop runs before (and while) we fork.
            let _ = unirun::capabilities();
            for call in 0..100 {
                // A long timeout: a regression shows up as a timeout failure.
                let got = unirun::to_process_with(with_timeout(), || {
                    let caps = unirun::capabilities();
                    let _ = unirun::last_decision();
                    let spawned = unirun::spawn(async { 20 }).join().unwrap();
                    spawned + u32::from(caps.cpu_budget() >= 1) * 22
                })
                .join();
                match got {
                    Ok(value) => assert_eq!(value, 42),
                    Err(err) => panic!("call {call}: {err}"),
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(busy.join().unwrap() > 0);
        },
    );
}

/// Defect: a child that prints while a parent thread prints deadlocked
/// (183 of 200 forks): the stream's lock was copied into the child held.
/// The fork paths now lock stdout and stderr across the fork.
#[test]
fn a_child_prints_while_a_parent_thread_prints() {
    if !in_child_process("a_child_prints_while_a_parent_thread_prints") {
        return;
    }
    watchdog_for(
        "200 forks against a printing thread",
        Duration::from_secs(600),
        || {
            use std::io::Write;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let printer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // The real streams (not the test harness's capture).
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = writeln!(std::io::stdout().lock(), "parent prints");
                        let _ = writeln!(std::io::stderr().lock(), "parent prints");
                    }
                })
            };
            for call in 0..200u32 {
                let got = unirun::to_process_with(with_timeout(), move || {
                    let _ = writeln!(std::io::stdout().lock(), "child {call} prints");
                    let _ = writeln!(std::io::stderr().lock(), "child {call} prints");
                    call
                })
                .join();
                match got {
                    Ok(value) => assert_eq!(value, call),
                    Err(err) => panic!("call {call}: {err}"),
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            printer.join().unwrap();
        },
    );
}

/// `memory_limit` is headroom above the address space the child inherits
/// (documented): a small one fails a large allocation, a larger one lets
/// it through whatever the parent's size.
#[test]
fn the_memory_limit_is_headroom_above_the_inherited_address_space() {
    // Larger than any region malloc may have reserved already (a thread
    // arena is 64 MiB), so it needs new address space; zeroed pages are not
    // touched.
    let alloc = || std::hint::black_box(vec![0u8; 256 << 20]).len() as u64;
    let err = unirun::to_process_with(with_timeout().memory_limit(4 << 20), alloc)
        .join()
        .unwrap_err();
    assert_eq!(err.signal_name(), Some("SIGABRT"), "{err}");
    // Room for the closure, with slack for a thread stack or two.
    let sum = unirun::to_process_with(with_timeout().memory_limit(1 << 30), alloc)
        .join()
        .unwrap();
    assert_eq!(sum, 256 << 20);
}

fn forker_threads() -> usize {
    unirun_platform::thread_names()
        .expect("guarded by lists_threads()")
        .iter()
        .filter(|name| *name == "unirun-forker")
        .count()
}

/// The `unirun-forker` thread (and the fork server) used to survive
/// `reset()` and scope shutdown forever; now `reset()` ends them.
#[test]
fn reset_ends_the_forker_thread_and_the_fork_server() {
    if !common::lists_threads() {
        return;
    }
    if !in_child_process("reset_ends_the_forker_thread_and_the_fork_server") {
        return;
    }
    watchdog_for("forker lifecycle", Duration::from_secs(300), || {
        assert_eq!(forker_threads(), 0);
        // Pools that fork directly: the shared one and a scope's.
        assert_eq!(unirun::get_executor().call(double, 2).join().unwrap(), 4);
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(1)
            .build()
            .unwrap();
        assert_eq!(run.call(double, 3).join().unwrap(), 6);
        assert_eq!(forker_threads(), 1);
        // A finished scope lets go of it; the shared pool still holds it.
        run.shutdown();
        assert_eq!(forker_threads(), 1);
        // Reset joins the thread before it returns: no waiting needed.
        unirun::reset();
        assert_eq!(forker_threads(), 0, "{:?}", unirun_platform::thread_names());
        assert!(no_children(), "the pools' workers were reaped");

        // The fork server holds the thread too, and reset stops it.
        assert!(unirun::process::init());
        assert_eq!(forker_threads(), 1);
        let pool = unirun::process::ProcessPool::new(1, with_timeout());
        assert!(
            pool.origin().starts_with("fork server"),
            "{}",
            pool.origin()
        );
        assert_eq!(pool.call(double, 4).unwrap(), 8);
        assert_eq!(unirun::get_executor().call(double, 5).join().unwrap(), 10);
        pool.shutdown_now();
        unirun::reset();
        assert_eq!(forker_threads(), 0, "{:?}", unirun_platform::thread_names());
        assert!(no_children(), "the server and its workers were reaped");
        // Everything starts again on demand.
        assert_eq!(unirun::get_executor().call(double, 6).join().unwrap(), 12);
        assert_eq!(forker_threads(), 1);
        unirun::reset();
        assert_eq!(forker_threads(), 0);
    });
}

/// A scope sent to processes says exactly what forks: its trace and its
/// handle's flavor agree, `call`/`to_process` fork, `spawn` and
/// `spawn_blocking` run on threads of this process.
#[test]
fn a_processes_scope_tells_the_truth_about_what_forks() {
    let cases = [
        Run::builder().flavor(Flavor::Processes),
        Run::builder().config(
            RuntimeConfig::default()
                .cpu_bound(true)
                .thread_mode(ThreadMode::Gil),
        ),
    ];
    for builder in cases {
        let run = builder.max_workers(1).build().unwrap();
        let line = run.trace().to_string();
        assert_eq!(run.trace().resolved(), Flavor::Processes, "{line}");
        assert_eq!(run.handle().flavor(), Flavor::Processes);
        assert!(
            line.contains(
                "call/to_process fork worker processes, spawn and spawn_blocking stay on threads"
            ),
            "{line}"
        );
        let here = std::process::id();
        assert_eq!(
            run.spawn(async { std::process::id() }).join().unwrap(),
            here
        );
        assert_eq!(run.spawn_blocking(std::process::id).join().unwrap(), here);
        assert_ne!(run.to_process(std::process::id).join().unwrap(), here);
        run.shutdown();
    }
    // A threads scope says threads.
    let threads = Run::builder().flavor(Flavor::Threads).build().unwrap();
    assert_eq!(threads.handle().flavor(), Flavor::Threads);
    assert!(!threads.trace().to_string().contains("fork"));
}

/// Calls joined from a plain thread read their replies there (no lane
/// hop); a graceful shutdown must still wait for calls nobody joined yet,
/// and then hand their results to the handles.
#[test]
fn a_scope_shutdown_finishes_calls_nobody_joined_yet() {
    watchdog("shutdown with unjoined calls", || {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(2)
            .build()
            .unwrap();
        let warm: Vec<_> = (0..2).map(|i| run.call(double, i)).collect();
        for handle in warm {
            handle.join().unwrap();
        }
        let handles: Vec<_> = (0..5).map(|i| run.call(double, i)).collect();
        run.shutdown();
        let out: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(out, [0, 2, 4, 6, 8]);
    });
}

#[test]
fn calls_joined_in_any_order_all_resolve() {
    watchdog("calls joined out of order", || {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(2)
            .build()
            .unwrap();
        for round in 0..20u64 {
            let handles: Vec<_> = (0..7).map(|i| run.call(double, round * 10 + i)).collect();
            // Last first, then the rest from the middle out.
            let mut order: Vec<usize> = (0..7).rev().collect();
            order.rotate_left(round as usize % 7);
            let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
            for i in order {
                let got = handles[i].take().unwrap().join().unwrap();
                assert_eq!(got, (round * 10 + i as u64) * 2);
            }
        }
        run.shutdown();
    });
}

#[test]
fn calls_from_async_tasks_and_plain_threads_mix() {
    watchdog("async and joined calls", || {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(2)
            .build()
            .unwrap();
        let handle = run.handle();
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let calls = handle.clone();
                run.spawn(async move { calls.call(double, i).await.unwrap() })
            })
            .collect();
        let joined: Vec<u64> = (0..50u64)
            .map(|i| run.call(double, i).join().unwrap())
            .collect();
        let awaited: Vec<u64> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(joined, (0..50u64).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(awaited, (0..200u64).map(|i| i * 2).collect::<Vec<_>>());
        run.shutdown();
    });
}

#[test]
fn a_serialized_scope_joins_calls_from_its_own_tasks() {
    watchdog("gil scope joining calls", || {
        let config = RuntimeConfig::default().thread_mode(ThreadMode::Gil);
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .config(config)
            .max_workers(2)
            .build()
            .unwrap();
        let calls = run.handle();
        // Each blocking task joins a call while holding the scope's lock;
        // the join releases it, so the other task gets to run meanwhile.
        let tasks: Vec<_> = (0..4u64)
            .map(|i| {
                let calls = calls.clone();
                run.spawn_blocking(move || {
                    (0..10)
                        .map(|j| calls.call(double, i * 10 + j).join().unwrap())
                        .sum::<u64>()
                })
            })
            .collect();
        let sums: Vec<u64> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
        let want: Vec<u64> = (0..4u64)
            .map(|i| (0..10).map(|j| (i * 10 + j) * 2).sum())
            .collect();
        assert_eq!(sums, want);
        run.shutdown();
    });
}

/// The pid of the process that ran the call.
fn serving_pid(_: ()) -> i32 {
    sys::getpid()
}

/// A child forked by other code (a plain `fork`, not unirun's) never
/// writes to the parent's pool workers: the pool tells a child from its
/// creator by the fork generation, which the fork handler it registered
/// raises in every child, so the call forks a fresh child of its own. The
/// parent's worker serves on.
#[test]
fn a_plainly_forked_child_never_uses_the_parents_pool_workers() {
    if !in_child_process("a_plainly_forked_child_never_uses_the_parents_pool_workers") {
        return;
    }
    watchdog("plainly forked child", || {
        let pool = unirun::process::ProcessPool::new(1, with_timeout());
        let worker = pool.call(serving_pid, ()).unwrap();
        // SAFETY: the child uses only the pool (unirun's fork-guarded state)
        // and leaves with `_exit`; no other thread of this test process
        // holds a lock it needs (the pool's helper threads are idle).
        match unsafe { sys::fork() }.unwrap() {
            sys::Forked::Child => {
                let code = match pool.call(serving_pid, ()) {
                    Ok(pid) if pid == worker => 1,
                    Ok(_) => 0,
                    Err(_) => 2,
                };
                sys::exit_now(code)
            }
            sys::Forked::Parent(child) => {
                let status = sys::wait_pid(child, true).unwrap();
                assert_eq!(
                    status,
                    Some(sys::ExitStatus::Exited(0)),
                    "1: the child used the parent's worker; 2: its call failed"
                );
            }
        }
        assert_eq!(pool.call(serving_pid, ()).unwrap(), worker);
    });
}

/// Reads one byte from `fd` (the read end of a pipe the test made before
/// the worker forked), then answers 7.
fn wait_for_byte(fd: i32) -> u8 {
    let mut byte = [0u8; 1];
    // SAFETY: `fd` is the read end of a pipe the test created before the
    // worker was forked; one byte into a live buffer.
    unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
    7
}

fn panics(_: u8) -> u8 {
    panic!("a call that panics")
}

/// A scope with one worker, started and idle, so the next call is sent
/// from the calling thread and read by whoever joins it (no reader task).
fn one_idle_worker(options: ProcessOptions) -> Run {
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(1)
        .process_options(options)
        .build()
        .unwrap();
    assert_eq!(run.call(double, 4).join().unwrap(), 8);
    run
}

/// A call joined on a plain thread reads its reply there, with no task:
/// `shutdown_now` on another thread still cancels it (kills its worker),
/// whether the joiner took the reader before the shutdown or not.
#[test]
fn a_call_joined_on_its_thread_is_cancelled_by_shutdown_now() {
    if !in_child_process("a_call_joined_on_its_thread_is_cancelled_by_shutdown_now") {
        return;
    }
    use std::os::fd::AsRawFd;
    // Before the worker forks, so the worker has it too.
    let (ready, started) = sys::pipe().unwrap();
    let run = one_idle_worker(with_timeout());
    let stuck = run.call(signal_then_hang, started.as_raw_fd());
    let joiner = std::thread::spawn(move || stuck.join());
    let mut byte = [0u8; 1];
    assert_eq!(
        sys::read_until(ready.as_fd(), &mut byte, None).unwrap(),
        Some(1)
    );
    run.shutdown_now();
    let err = watchdog_this_test(move || joiner.join().unwrap()).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(no_children(), "the scope's workers were reaped");
}

/// A scope's waiting shutdown waits for a call whose joiner reads the
/// reply in place: the call ends with its value, not cancelled by the
/// pool's close after the wait.
#[test]
fn a_scope_shutdown_waits_for_a_call_joined_on_its_thread() {
    if !in_child_process("a_scope_shutdown_waits_for_a_call_joined_on_its_thread") {
        return;
    }
    use std::os::fd::AsRawFd;
    let (go_read, go_write) = sys::pipe().unwrap();
    let run = one_idle_worker(with_timeout());
    let call = run.call(wait_for_byte, go_read.as_raw_fd());
    let joiner = std::thread::spawn(move || call.join());
    let shutdown = std::thread::spawn(move || run.shutdown());
    sys::write_all(go_write.as_fd(), b"!").unwrap();
    let answer = watchdog_this_test(move || {
        shutdown.join().unwrap();
        joiner.join().unwrap()
    });
    assert_eq!(answer.unwrap(), 7);
}

/// The pool's timeout still applies to a call read on the joining thread.
#[test]
fn a_call_joined_on_its_thread_still_times_out() {
    // Long enough for the quick calls on a loaded machine.
    let run = one_idle_worker(ProcessOptions::default().timeout(Duration::from_secs(5)));
    let err = run.call(sleep_for, 600).join().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(run.metrics().process_timeouts(), 1);
    // The timed-out worker was replaced.
    assert_eq!(run.call(double, 5).join().unwrap(), 10);
    run.shutdown();
}

/// Calls read on the joining thread (no reader task) and awaited ones are
/// each counted once in the scope's metrics, by how they ended.
#[test]
fn calls_joined_on_their_thread_count_once_in_the_metrics() {
    let run = one_idle_worker(with_timeout());
    let before = run.metrics();
    for i in 0..10 {
        assert_eq!(run.call(double, i).join().unwrap(), 2 * i);
    }
    assert!(run.call(panics, 0).join().unwrap_err().is_panic());
    assert_eq!(unirun::block_on(run.call(double, 3)).unwrap(), 6);
    let after = run.metrics();
    assert_eq!(after.spawned() - before.spawned(), 12);
    assert_eq!(after.completed() - before.completed(), 11);
    assert_eq!(after.panicked() - before.panicked(), 1);
    assert_eq!(after.live(), 0);
    run.shutdown();
}

/// A result that serializes as a number and whose own `Deserialize`
/// panics: the parent's decoding of the reply panics.
#[derive(Debug)]
struct PanicsOnDecode;

impl serde::Serialize for PanicsOnDecode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(0)
    }
}

impl<'de> serde::Deserialize<'de> for PanicsOnDecode {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("the result's Deserialize panics")
    }
}

fn panics_on_decode(_: u8) -> PanicsOnDecode {
    PanicsOnDecode
}

/// A reply whose decoding panics, read on the joining thread, resolves the
/// join to a panic error as any task's panic does (and as it does when the
/// call is awaited): the joiner does not unwind, the call counts once as
/// panicked, and the worker serves on. In a child process of its own: a
/// panic in this process while another test forks a worker can leave that
/// worker a lock of the panic machinery held (its own panic then hangs).
#[test]
fn a_call_whose_reply_decoding_panics_joins_to_a_panic_error() {
    if !in_child_process("a_call_whose_reply_decoding_panics_joins_to_a_panic_error") {
        return;
    }
    let run = one_idle_worker(with_timeout());
    let before = run.metrics();
    let handle = run.call(panics_on_decode, 0);
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.join()));
    let err = joined
        .expect("join unwound instead of returning the panic")
        .unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.panic_message(), Some("the result's Deserialize panics"));
    let awaited = unirun::block_on(run.call(panics_on_decode, 0)).unwrap_err();
    assert!(awaited.is_panic(), "{awaited}");
    let after = run.metrics();
    assert_eq!(after.panicked() - before.panicked(), 2);
    assert_eq!(after.live(), 0);
    assert_eq!(run.call(double, 5).join().unwrap(), 10);
    run.shutdown();
}
