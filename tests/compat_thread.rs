//! `unirun::compat::thread`, written as `std::thread` code is. Each test runs
//! here in managed mode and again in a child process with
//! `UNIRUN_COMPAT_MODE=passthrough`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use unirun::compat::thread;

fn current_name() -> Option<String> {
    std::thread::current().name().map(String::from)
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
        let name = name.unwrap_or_default();
        assert!(name.starts_with("unirun-blocking-"), "{name}");
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
    if common::passthrough() {
        assert_eq!(name.as_deref(), Some("compat-named"));
    }
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
            let name = name.unwrap_or_default();
            assert!(name.starts_with("unirun-blocking-"), "{name}");
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
    common::also_in_passthrough("ten_thousand_spawns_do_not_make_ten_thousand_threads");
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
