//! `unirun::compat::thread`, written as `std::thread` code is. Each test runs
//! here in managed mode and again in a child process with
//! `UNIRUN_COMPAT_MODE=passthrough`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use unirun::compat::thread;
use unirun_test_support::watchdog;

fn current_name() -> Option<String> {
    std::thread::current().name().map(String::from)
}

/// In managed mode a closure runs on a pooled thread, or, while the lane is
/// full (tests running in parallel fill it), on an unnamed thread of its own.
fn assert_pooled_or_dedicated(name: Option<String>) {
    if let Some(name) = name {
        assert!(name.starts_with("unirun-blocking-"), "{name}");
    }
}

/// Runs test `name` in two child processes, passthrough and managed, and
/// returns whether this is one of them: for tests that fill the shared lane
/// and would disturb the tests running beside them.
fn isolated(name: &str) -> bool {
    common::also_in_passthrough(name);
    common::in_child_process(name)
}

#[test]
fn spawn_and_join_return_values() {
    common::also_in_passthrough("spawn_and_join_return_values");
    let handles: Vec<thread::JoinHandle<u64>> =
        (0..8u64).map(|i| thread::spawn(move || i * i)).collect();
    let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);

    let name = thread::spawn(current_name).join().unwrap();
    if common::passthrough() {
        // A fresh, unnamed OS thread, as std gives.
        assert_eq!(name, None);
    } else {
        assert_pooled_or_dedicated(name);
    }
}

#[test]
fn a_panic_comes_back_from_join() {
    common::also_in_passthrough("a_panic_comes_back_from_join");
    let handle = thread::spawn(|| -> u32 { panic!("worker failed") });
    let payload = handle.join().unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker failed"));

    let code = std::hint::black_box(7);
    let formatted = thread::spawn(move || -> u32 { panic!("code {code}") });
    let payload = formatted.join().unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "code 7");
    // The next spawn still works.
    assert_eq!(thread::spawn(|| 1).join().unwrap(), 1);
}

#[test]
fn builder_spawns_like_std() {
    common::also_in_passthrough("builder_spawns_like_std");
    let handle = thread::Builder::new()
        .name("compat-named".into())
        .spawn(current_name)
        .unwrap();
    let name = handle.join().unwrap();
    // Both modes: a named closure sees its name, as std's does.
    assert_eq!(name.as_deref(), Some("compat-named"));
    // A stack size always gets an OS thread of its own.
    let deep = thread::Builder::new()
        .stack_size(4 << 20)
        .spawn(|| (0..1000u32).sum::<u32>())
        .unwrap();
    assert_eq!(deep.join().unwrap(), 499_500);
}

#[test]
fn is_finished_turns_true() {
    common::also_in_passthrough("is_finished_turns_true");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = thread::spawn(move || rx.recv().is_ok());
    assert!(!handle.is_finished());
    tx.send(()).unwrap();
    common::wait_until(|| handle.is_finished());
    assert!(handle.join().unwrap());
}

#[test]
fn scope_lets_threads_borrow_locals() {
    common::also_in_passthrough("scope_lets_threads_borrow_locals");
    let words = vec!["alpha", "beta", "gamma"];
    let total = AtomicUsize::new(0);
    let mut log = Vec::new();
    thread::scope(|s| {
        for word in &words {
            s.spawn(|| total.fetch_add(word.len(), Ordering::SeqCst));
        }
        let first = s.spawn(|| words[0].to_uppercase());
        log.push(first.join().unwrap());
    });
    assert_eq!(total.load(Ordering::SeqCst), 14);
    assert_eq!(log, ["ALPHA"]);

    // Mutable borrows, and where the scoped threads run.
    let mut counts = [0u32; 4];
    let names = thread::scope(|s| {
        let handles: Vec<_> = counts
            .iter_mut()
            .map(|c| {
                s.spawn(move || {
                    *c += 1;
                    current_name()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(counts, [1; 4]);
    for name in names {
        if common::passthrough() {
            assert_eq!(name, None);
        } else {
            assert_pooled_or_dedicated(name);
        }
    }

    // A joined panic is the caller's to handle; the scope goes on.
    let joined = thread::scope(|s| s.spawn(|| -> u8 { panic!("joined") }).join());
    assert!(joined.is_err());

    let caught = std::panic::catch_unwind(|| {
        thread::scope(|s| {
            s.spawn(|| panic!("scoped failure"));
        })
    });
    assert!(caught.is_err());
}

#[test]
fn ten_thousand_spawns_do_not_make_ten_thousand_threads() {
    if !isolated("ten_thousand_spawns_do_not_make_ten_thousand_threads") {
        return;
    }
    if common::passthrough() {
        // std starts an OS thread per call; that is the point of managed
        // mode, so passthrough only checks the results on a smaller run.
        let handles: Vec<_> = (0..100).map(|i| thread::spawn(move || i)).collect();
        let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 4950);
        return;
    }
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let handles: Vec<_> = (0..10_000usize)
        .map(|i| {
            let seen = seen.clone();
            thread::spawn(move || {
                seen.lock().unwrap().insert(std::thread::current().id());
                i
            })
        })
        .collect();
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 10_000 * 9_999 / 2);
    let threads = seen.lock().unwrap().len();
    let cap = unirun::get_executor().max_blocking_threads();
    assert!(
        threads <= cap * 4 && threads < 10_000,
        "{threads} OS threads for 10,000 spawns (lane cap {cap})"
    );
}

#[test]
fn the_mode_is_read_again_after_reset() {
    // Changes the environment and global state: alone in a child process.
    if !common::in_child_process("the_mode_is_read_again_after_reset") {
        return;
    }
    let pooled = |name: Option<String>| name.is_some_and(|n| n.starts_with("unirun-blocking-"));
    assert!(pooled(thread::spawn(current_name).join().unwrap()));
    // Read once: a later change of the variable alone changes nothing...
    std::env::set_var("UNIRUN_COMPAT_MODE", "passthrough");
    assert!(pooled(thread::spawn(current_name).join().unwrap()));
    // ...until `reset()`.
    unirun::reset();
    assert_eq!(thread::spawn(current_name).join().unwrap(), None);
    std::env::remove_var("UNIRUN_COMPAT_MODE");
    unirun::reset();
    // Code can choose too, under the environment's kill switch.
    unirun::configure(
        unirun::RuntimeConfig::default().compat_mode(unirun::CompatMode::Passthrough),
    )
    .unwrap();
    assert_eq!(thread::spawn(current_name).join().unwrap(), None);
}

/// `n` spawned threads meet at one std barrier; each returns its index.
fn barrier_of(n: usize) -> usize {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                i
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// A chain of `depth` threads, each spawning the next and joining it.
fn nested_chain(depth: usize) -> usize {
    fn link(left: usize) -> usize {
        if left == 0 {
            return 0;
        }
        thread::spawn(move || link(left - 1)).join().unwrap() + 1
    }
    link(depth)
}

#[test]
fn a_thousand_threads_meet_at_a_barrier() {
    if !isolated("a_thousand_threads_meet_at_a_barrier") {
        return;
    }
    // Twice the default lane cap and more: std starts 1,000 threads, so must we.
    let sum = watchdog("1,000 threads at a barrier", || barrier_of(1000));
    assert_eq!(sum, 1000 * 999 / 2);
}

#[test]
fn a_chain_of_a_thousand_nested_spawns_joins() {
    if !isolated("a_chain_of_a_thousand_nested_spawns_joins") {
        return;
    }
    let depth = watchdog("a chain of 1,000 nested spawns", || nested_chain(1000));
    assert_eq!(depth, 1000);
}

#[test]
fn a_tiny_lane_cap_never_deadlocks() {
    // Configures the shared default: alone in a child process.
    if !common::in_child_process("a_tiny_lane_cap_never_deadlocks") {
        return;
    }
    unirun::configure(unirun::RuntimeConfig::default().max_blocking(2)).unwrap();
    assert_eq!(unirun::get_executor().max_blocking_threads(), 2);
    let (sum, depth) = watchdog("a lane capped at 2", || (barrier_of(64), nested_chain(64)));
    assert_eq!(sum, 64 * 63 / 2);
    assert_eq!(depth, 64);
    // Scoped threads get the same guarantee.
    let met = watchdog("scoped threads on a lane capped at 2", || {
        let barrier = std::sync::Barrier::new(16);
        let count = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    barrier.wait();
                    count.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        count.into_inner()
    });
    assert_eq!(met, 16);
    // The lane itself kept its cap: the rest got threads of their own. (The
    // lane's own count, not the OS's threads by name: a lane thread past its
    // keep-alive on a loaded machine may still be listed while exiting.)
    let lane_threads = unirun::get_executor().metrics().blocking_threads();
    assert!(
        lane_threads <= 2,
        "{lane_threads} lane threads over a cap of 2"
    );
}

#[test]
fn join_handle_thread_is_the_thread_running_the_closure() {
    common::also_in_passthrough("join_handle_thread_is_the_thread_running_the_closure");
    // std's documented pattern: park inside, unpark through `handle.thread()`.
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, started) = std::sync::mpsc::channel();
    let inside = flag.clone();
    let handle = thread::spawn(move || {
        started_tx.send(()).unwrap();
        while !inside.load(Ordering::SeqCst) {
            thread::park();
        }
        thread::current().id()
    });
    started.recv().unwrap();
    let id = handle.thread().id();
    flag.store(true, Ordering::SeqCst);
    handle.thread().unpark();
    let ran_on = watchdog("a parked thread", move || handle.join().unwrap());
    assert_eq!(ran_on, id);

    // Asked at once, maybe before the closure started: never waits, and
    // still the thread that runs it.
    for _ in 0..50 {
        let handle = thread::spawn(|| (thread::current().id(), current_name()));
        let (id, name) = (
            handle.thread().id(),
            handle.thread().name().map(String::from),
        );
        assert_eq!(handle.join().unwrap(), (id, name));
    }
}

#[test]
fn builder_name_is_the_threads_name_inside_the_closure() {
    common::also_in_passthrough("builder_name_is_the_threads_name_inside_the_closure");
    fn os_name(tid: i64) -> Option<String> {
        let path = format!("/proc/self/task/{tid}/comm");
        std::fs::read_to_string(path)
            .ok()
            .map(|n| n.trim_end().to_string())
    }
    let handle = thread::Builder::new()
        .name("compat-named".into())
        .spawn(|| {
            // SAFETY: gettid has no preconditions.
            let tid = i64::from(unsafe { libc::gettid() });
            (os_name(tid), current_name())
        })
        .unwrap();
    assert_eq!(handle.thread().name(), Some("compat-named"));
    let (os, std_name) = handle.join().unwrap();
    // std's view, the OS's view and the handle's all carry the name.
    assert_eq!(std_name.as_deref(), Some("compat-named"));
    if common::lists_threads() {
        assert_eq!(os.as_deref(), Some("compat-named"));
    }
    // A scoped spawn with a name too.
    let scoped = thread::scope(|s| {
        thread::Builder::new()
            .name("compat-scoped".into())
            .spawn_scoped(s, current_name)
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(scoped.as_deref(), Some("compat-scoped"));
}

#[test]
fn builder_spawn_scoped_and_scoped_thread() {
    common::also_in_passthrough("builder_spawn_scoped_and_scoped_thread");
    let mut total = 0u64;
    let values = [1u64, 2, 3];
    let (id, inner, named) = thread::scope(|s| {
        let handle = thread::Builder::new()
            .name("scoped-named".into())
            .spawn_scoped(s, || {
                total += values.iter().sum::<u64>();
                (
                    thread::current().id(),
                    std::fs::read_to_string("/proc/thread-self/comm").ok(),
                )
            })
            .unwrap();
        let id = handle.thread().id();
        let (inner, named) = handle.join().unwrap();
        (id, inner, named)
    });
    assert_eq!(total, 6);
    assert_eq!(id, inner);
    if common::lists_threads() {
        assert_eq!(named.unwrap().trim_end(), "scoped-named");
    }
    // A stack size: an OS thread of its own, in both modes.
    let deep = thread::scope(|s| {
        thread::Builder::new()
            .stack_size(4 << 20)
            .spawn_scoped(s, || values.len())
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(deep, 3);
    // `ScopedJoinHandle::thread` of a plain scoped spawn.
    thread::scope(|s| {
        let handle = s.spawn(|| thread::current().id());
        let id = handle.thread().id();
        assert_eq!(handle.join().unwrap(), id);
    });
}

#[test]
fn the_rest_of_std_thread_is_std_s_own() {
    use std::cell::Cell;
    use std::time::Duration;
    // The whole line converts, and each name is std's item.
    use unirun::compat::thread::{
        available_parallelism, current, panicking, park_timeout, sleep, yield_now, AccessError,
        LocalKey, Result, Thread, ThreadId,
    };
    thread_local!(static COUNT: Cell<u32> = const { Cell::new(0) });

    let me: Thread = current();
    let id: ThreadId = me.id();
    assert_eq!(id, std::thread::current().id());
    sleep(Duration::ZERO);
    yield_now();
    park_timeout(Duration::ZERO);
    unirun::compat::thread::park_timeout(Duration::ZERO);
    assert!(available_parallelism().unwrap().get() >= 1);
    assert!(!panicking());
    let key: &'static LocalKey<Cell<u32>> = &COUNT;
    key.with(|c| c.set(c.get() + 1));
    let read: std::result::Result<u32, AccessError> = key.try_with(Cell::get);
    assert_eq!(read, Ok(1));
    let joined: Result<u32> = thread::spawn(|| 2).join();
    assert_eq!(joined.unwrap(), 2);
    // `park`/`unpark`: a token set beforehand makes `park` return at once.
    current().unpark();
    unirun::compat::thread::park();
    // `panicking` is true while a panic unwinds, on a compat thread too.
    struct SeesPanic(std::sync::mpsc::Sender<bool>);
    impl Drop for SeesPanic {
        fn drop(&mut self) {
            let _ = self.0.send(panicking());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = thread::spawn(move || {
        let _guard = SeesPanic(tx);
        panic!("unwinding");
    });
    assert!(failed.join().is_err());
    assert!(rx.recv().unwrap());
}

#[test]
fn builder_spawn_unchecked_borrows_like_std() {
    common::also_in_passthrough("builder_spawn_unchecked_borrows_like_std");
    let numbers = vec![1u64, 2, 3];
    let borrowed = &numbers;
    // SAFETY: joined below, while `numbers` lives.
    let handle = unsafe {
        thread::Builder::new()
            .name("compat-unchecked".into())
            .spawn_unchecked(|| (borrowed.iter().sum::<u64>(), current_name()))
            .unwrap()
    };
    let (sum, name) = handle.join().unwrap();
    assert_eq!(sum, 6);
    assert_eq!(name.as_deref(), Some("compat-unchecked"));
}

#[test]
fn the_compat_mode_line_is_printed_once_per_process() {
    const NAME: &str = "the_compat_mode_line_is_printed_once_per_process";
    if !common::is_child() {
        let output = common::run_child(NAME, &[("UNIRUN_TRACE", "1")]);
        let lines = output
            .stderr
            .lines()
            .filter(|l| l.contains("compat mode"))
            .count();
        assert_eq!(lines, 1, "{}", output.stderr);
        return;
    }
    // Many threads reading the mode at once, then again after a reset.
    let readers: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| thread::spawn(|| 1).join().unwrap()))
        .collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), 1);
    }
    unirun::reset();
    assert_eq!(thread::spawn(|| 2).join().unwrap(), 2);
}
