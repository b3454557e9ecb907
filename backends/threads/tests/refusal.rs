//! When the OS refuses a thread, the blocking lane shrinks its cap and keeps
//! serving instead of panicking, and a pool dropped on its own worker stops
//! without recursing. The refusal is provoked in a fresh process by lowering
//! its address-space limit below what a new thread's stack needs.
#![cfg(target_os = "linux")]

use std::process::Command;
use std::sync::mpsc;

use unirun_threads::ThreadPool;

const CHILD: &str = "UNIRUN_REFUSAL_CHILD";
/// Stack of every pool thread: large, so one more thread cannot fit under the limit.
const STACK: usize = 256 << 20;

/// In the parent: re-runs the test `name` alone in a child process and
/// checks it passed; returns `false`. In that child: returns `true`.
fn in_child(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    false
}

#[test]
fn a_pool_dropped_on_its_worker_without_a_helper_thread_stops_without_recursing() {
    if !in_child("a_pool_dropped_on_its_worker_without_a_helper_thread_stops_without_recursing") {
        return;
    }
    let pool = ThreadPool::builder()
        .workers(1)
        .name("nohelper")
        .stack_size(STACK)
        .build()
        .unwrap();
    // The worker must be up before memory gets tight.
    pool.spawn(async {}).join().unwrap();
    let pending = pool.spawn(std::future::pending::<()>());
    let (hand_over, slot) = mpsc::channel::<ThreadPool>();
    let (report, reported) = mpsc::channel();
    let dropper = pool.spawn(async move {
        let pool = slot.recv().unwrap();
        // The `-shutdown` helper (the pool's stack size) cannot start:
        // this used to recurse until the worker's stack overflowed.
        drop(pool);
        report.send("dropped").unwrap();
    });
    set_address_space_limit(vm_size_bytes() + (64 << 20));
    hand_over.send(pool).unwrap();
    let outcome = reported.recv_timeout(std::time::Duration::from_secs(60));
    set_address_space_limit(libc::RLIM_INFINITY as usize);
    assert_eq!(outcome.unwrap(), "dropped");
    // Stopped without waiting: what was pending is cancelled.
    assert!(pending.join().unwrap_err().is_cancelled());
    assert!(dropper.join().is_ok());
}

#[test]
fn the_lane_shrinks_its_cap_when_the_os_refuses_a_thread() {
    if !in_child("the_lane_shrinks_its_cap_when_the_os_refuses_a_thread") {
        return;
    }
    let pool = ThreadPool::builder()
        .workers(1)
        .name("refuse")
        .stack_size(STACK)
        .build()
        .unwrap();
    let handle = pool.handle();
    let configured = handle.blocking_stats().cap;
    // The worker must be up (its start allocates a signal stack) before memory gets tight.
    pool.spawn(async {}).join().unwrap();

    set_address_space_limit(vm_size_bytes() + (64 << 20));
    // The lane cannot start a thread: with none at all, the closure runs on the caller.
    let caller = std::thread::current().id();
    let ran_on = pool
        .spawn_blocking(move || std::thread::current().id())
        .join()
        .unwrap();
    assert_eq!(ran_on, caller);
    let stats = handle.blocking_stats();
    assert!(stats.spawn_failures >= 1, "{stats:?}");
    assert!(stats.cap < configured, "cap did not shrink: {stats:?}");

    // With room again the lane serves from its own thread, within the shrunk cap.
    set_address_space_limit(libc::RLIM_INFINITY as usize);
    let name = pool
        .spawn_blocking(|| std::thread::current().name().map(String::from))
        .join()
        .unwrap();
    assert!(name.unwrap().starts_with("refuse-blocking-"));
    assert!(handle.blocking_stats().threads <= stats.cap);
}

fn vm_size_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn set_address_space_limit(bytes: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) }, 0);
    // Only the soft limit moves, so it can be raised again.
    limit.rlim_cur = (bytes as libc::rlim_t).min(limit.rlim_max);
    // SAFETY: `limit` is a valid rlimit; lowering or restoring our own soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
}
