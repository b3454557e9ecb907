//! In a forked child the shared default executor is the child's own: the
//! parent's (whose workers, blocking lane and unirun-io thread `fork` did
//! not copy) is forgotten on first use, never dropped, and a fresh one
//! with real threads starts. Blocking closures that wait for each other,
//! `compat::thread` and tokio sockets in tasks then work in a
//! `to_process` child. Each test re-runs this binary as a fresh process
//! (the tests fork), runs its body under a watchdog, and gives every child
//! a timeout as a safety net: a child that hangs is killed and the test
//! fails with "timed out".
#![cfg(all(unix, feature = "process-backend"))]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use unirun::process::ProcessOptions;

use common::{in_child_process, watchdog_this_test};

/// Only a safety net against a hang; no test depends on its length.
fn safety_net() -> ProcessOptions {
    ProcessOptions::default().timeout(Duration::from_secs(30))
}

/// The parent's shared default runs (and this thread caches it) before
/// the fork, so the child inherits it.
fn use_the_default_in_the_parent() {
    assert_eq!(unirun::spawn(async { 1 }).join().unwrap(), 1);
    assert_eq!(unirun::to_thread(|| 2).join().unwrap(), 2);
}

#[test]
fn to_thread_closures_that_wait_for_each_other_both_run_in_a_forked_child() {
    if !in_child_process("to_thread_closures_that_wait_for_each_other_both_run_in_a_forked_child") {
        return;
    }
    watchdog_this_test(|| {
        use_the_default_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            // Run one after the other on one thread, the waiter would wait
            // for a sender that has not started: only real threads finish.
            let (tx, rx) = mpsc::channel::<u32>();
            let waiter = unirun::to_thread(move || rx.recv().unwrap_or(0));
            let sender = unirun::to_thread(move || tx.send(5).is_ok());
            (sender.join().unwrap(), waiter.join().unwrap())
        });
        assert_eq!(child.join().expect("the child replied"), (true, 5));
        // The parent's default was left alone by the child.
        use_the_default_in_the_parent();
    });
}

#[test]
fn compat_threads_that_wait_for_each_other_both_run_in_a_forked_child() {
    if !in_child_process("compat_threads_that_wait_for_each_other_both_run_in_a_forked_child") {
        return;
    }
    watchdog_this_test(|| {
        use_the_default_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            use unirun::compat::thread;
            let (tx, rx) = mpsc::channel::<u32>();
            let receiver = thread::spawn(move || rx.recv().unwrap_or(0));
            let sender = thread::spawn(move || tx.send(1).is_ok());
            (sender.join().unwrap(), receiver.join().unwrap())
        });
        assert_eq!(child.join().expect("the child replied"), (true, 1));
    });
}

#[test]
fn the_shared_default_in_a_forked_child_is_a_pool_of_the_childs_own() {
    if !in_child_process("the_shared_default_in_a_forked_child_is_a_pool_of_the_childs_own") {
        return;
    }
    watchdog_this_test(|| {
        use_the_default_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            let me = std::thread::current().id();
            // A task of the child's default runs on one of its workers, not
            // inline on the calling thread as an inherited pool's would.
            let on_worker = unirun::spawn(async move { std::thread::current().id() != me });
            let on_worker = on_worker.join().unwrap();
            let on_lane = unirun::to_thread(move || std::thread::current().id() != me);
            let on_lane = on_lane.join().unwrap();
            // Its own: `reset` shuts it down (joining its threads) and the
            // next use starts another.
            unirun::reset();
            let again = unirun::to_thread(|| 3).join().unwrap();
            (on_worker, on_lane, again)
        });
        assert_eq!(child.join().expect("the child replied"), (true, true, 3));
    });
}

#[test]
fn a_grandchild_gets_a_default_of_its_own_too() {
    if !in_child_process("a_grandchild_gets_a_default_of_its_own_too") {
        return;
    }
    watchdog_this_test(|| {
        use_the_default_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            assert_eq!(unirun::to_thread(|| 1).join().unwrap(), 1);
            let grandchild = unirun::to_process_with(safety_net(), || {
                let (tx, rx) = mpsc::channel::<u32>();
                let waiter = unirun::to_thread(move || rx.recv().unwrap_or(0));
                let sender = unirun::to_thread(move || tx.send(9).is_ok());
                (sender.join().unwrap(), waiter.join().unwrap())
            });
            grandchild.join().expect("the grandchild replied")
        });
        assert_eq!(child.join().expect("the child replied"), (true, 9));
    });
}

#[cfg(feature = "tokio-backend")]
#[test]
fn a_tokio_socket_in_a_unirun_task_works_in_a_forked_child() {
    if !in_child_process("a_tokio_socket_in_a_unirun_task_works_in_a_forked_child") {
        return;
    }
    watchdog_this_test(|| {
        use_the_default_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let echo = unirun::spawn(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let server = async move {
                    let (mut peer, _) = listener.accept().await?;
                    let mut buf = [0u8; 4];
                    peer.read_exact(&mut buf).await?;
                    peer.write_all(&buf).await?;
                    Ok::<_, std::io::Error>(())
                };
                let client = async move {
                    let mut stream = tokio::net::TcpStream::connect(addr).await?;
                    stream.write_all(b"fork").await?;
                    let mut back = [0u8; 4];
                    stream.read_exact(&mut back).await?;
                    Ok::<_, std::io::Error>(back)
                };
                let (served, back) = futures_lite::future::zip(server, client).await;
                served?;
                back
            });
            echo.join()
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        });
        let back = child.join().expect("the child replied");
        assert_eq!(&back.expect("the echo worked"), b"fork");
    });
}
