//! Entry points: `unirun::block_on` with tokio's and smol's I/O, and the
//! `#[unirun::main]` / `#[unirun::test]` attributes (feature `macros`).
//! Each I/O test moves a few bytes over a real loopback socket.

mod common;

use unirun::Handle;

#[unirun::test]
async fn test_attribute_runs_the_body_in_block_on() {
    // Inside `unirun::block_on`, the current executor is the shared default.
    assert_eq!(Handle::current().name(), "unirun");
    let name = unirun::spawn(async { std::thread::current().name().map(String::from) })
        .await
        .unwrap()
        .unwrap();
    assert!(name.starts_with("unirun-"), "{name}");
}

#[unirun::test]
async fn test_attribute_keeps_the_return_type() -> Result<(), std::num::ParseIntError> {
    let n: u8 = async { "7".parse() }.await?;
    assert_eq!(n, 7);
    Ok(())
}

#[unirun::test]
#[should_panic(expected = "kept")]
async fn test_attribute_keeps_other_attributes() {
    panic!("kept");
}

#[unirun::test]
async fn test_attribute_keeps_inner_attributes_in_the_body() {
    #![deny(unused_variables)]
    #![allow(unused_variables)]
    let unused = 1;
}

#[test]
fn block_on_uses_smol_sockets() {
    common::watchdog_this_test(|| {
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        let echoed = unirun::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = unirun::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0; 4];
                socket.read_exact(&mut buf).await.unwrap();
                socket.write_all(&buf).await.unwrap();
            });
            let mut client = async_net::TcpStream::connect(addr).await.unwrap();
            client.write_all(b"smol").await.unwrap();
            let mut buf = [0; 4];
            client.read_exact(&mut buf).await.unwrap();
            server.await.unwrap();
            buf
        });
        assert_eq!(&echoed, b"smol");
    });
}

#[cfg(feature = "tokio-backend")]
mod tokio_io {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn block_on_binds_a_tokio_listener() {
        super::common::watchdog_this_test(|| {
            let (echoed, server_thread) = unirun::block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = unirun::spawn(async move {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut buf = [0; 5];
                    socket.read_exact(&mut buf).await.unwrap();
                    socket.write_all(&buf).await.unwrap();
                    std::thread::current().name().map(String::from)
                });
                let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
                client.write_all(b"tokio").await.unwrap();
                let mut buf = [0; 5];
                client.read_exact(&mut buf).await.unwrap();
                // tokio's timers too.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                (buf, server.await.unwrap())
            });
            assert_eq!(&echoed, b"tokio");
            assert!(server_thread.unwrap().starts_with("unirun-"));
        });
    }

    #[unirun::test]
    async fn compat_tokio_spawn_in_a_unirun_test_runs_on_unirun_workers() {
        let name =
            unirun::compat::tokio::spawn(async { std::thread::current().name().map(String::from) })
                .await
                .unwrap()
                .unwrap();
        assert!(name.starts_with("unirun-"), "{name}");
    }

    #[test]
    fn block_on_inside_a_tokio_runtime_keeps_its_context() {
        super::common::watchdog_this_test(|| {
            // Told apart by where its tasks run: unirun's own reactor would
            // run them on `unirun-io` (`Handle::id` needs tokio 1.43+).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("entry-rt")
                .enable_all()
                .build()
                .unwrap();
            let _inside = rt.enter();
            let seen = unirun::block_on(async {
                tokio::runtime::Handle::current()
                    .spawn(async { std::thread::current().name().map(String::from) })
                    .await
                    .unwrap()
            });
            assert_eq!(seen.as_deref(), Some("entry-rt"));
        });
    }

    /// The message of a panic payload.
    fn message(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    /// On the only worker of a multi-thread runtime, the wait moves the
    /// worker's timers and tasks to another thread: a tokio timer and a
    /// tokio task the future waits for both complete.
    #[test]
    fn block_on_in_a_task_of_a_one_worker_runtime_completes() {
        super::common::watchdog_this_test(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let out = rt.block_on(async {
                tokio::spawn(async {
                    unirun::block_on(async {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        tokio::spawn(async { 7 }).await.unwrap()
                    })
                })
                .await
                .unwrap()
            });
            assert_eq!(out, 7);
        });
    }

    /// In a task of a scope that borrowed `#[tokio::test]`'s current-thread
    /// runtime, waiting for a task spawned "here" could never end (the
    /// waiting thread is the one that would run it): it panics at once,
    /// saying why.
    #[test]
    fn block_on_in_a_task_of_a_current_thread_runtime_panics_at_once() {
        super::common::watchdog_this_test(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (in_scope, in_tokio_task) = rt.block_on(async {
                let run = unirun::Run::builder().name("borrowing").build().unwrap();
                assert_eq!(
                    run.trace().resolved(),
                    unirun::Flavor::Tokio,
                    "{}",
                    run.trace()
                );
                let in_scope = run
                    .spawn(async { unirun::block_on(unirun::spawn(async { 1 })).unwrap() })
                    .await;
                run.shutdown_async().await;
                let in_tokio_task = tokio::spawn(async {
                    unirun::block_on(tokio::time::sleep(std::time::Duration::from_millis(1)))
                })
                .await;
                (in_scope, in_tokio_task)
            });
            let err = in_scope.unwrap_err();
            let said = err.panic_message().unwrap_or_default();
            assert!(said.contains("drives that runtime"), "{said}");
            let said = message(&*in_tokio_task.unwrap_err().into_panic());
            assert!(said.contains("use `.await`"), "{said}");
        });
    }

    /// On the thread inside a current-thread runtime's `block_on`, a wait
    /// for the runtime's timer could never end either: it panics at once,
    /// with unirun's message (tokio refuses to block that thread).
    #[test]
    fn block_on_inside_a_current_thread_block_on_panics_at_once() {
        super::common::watchdog_this_test(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.block_on(async {
                    unirun::block_on(tokio::time::sleep(std::time::Duration::from_millis(1)));
                })
            }));
            let said = message(&*caught.unwrap_err());
            assert!(said.contains("must not block"), "{said}");
        });
    }

    /// In a task of a current-thread runtime, a unirun scope's `block_on`
    /// enters unirun's own reactor on top: a `unirun::block_on` inside
    /// would block the thread that drives the runtime beneath, and panics
    /// with unirun's message saying so, not tokio's.
    #[test]
    fn block_on_in_a_scopes_block_on_in_a_current_thread_task_panics_saying_why() {
        super::common::watchdog_this_test(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let caught = rt.block_on(async {
                tokio::spawn(async {
                    let run = unirun::Run::builder()
                        .flavor(unirun::Flavor::Threads)
                        .build()
                        .unwrap();
                    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run.block_on(async { unirun::block_on(async { 3 }) })
                    }));
                    run.shutdown();
                    caught
                })
                .await
                .unwrap()
            });
            let said = message(&*caught.unwrap_err());
            assert!(said.contains("must not block"), "{said}");
            assert!(said.contains("current-thread"), "{said}");
        });
    }

    /// In a tokio `LocalSet` (here on a multi-thread runtime's `block_on`
    /// thread), tokio refuses to block: `unirun::block_on` in the set's
    /// task and in its `run_until` panics with unirun's message, naming
    /// the `LocalSet`.
    #[test]
    fn block_on_in_a_local_set_panics_saying_why() {
        super::common::watchdog_this_test(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            let (in_task, in_run_until) = local.block_on(&rt, async {
                let in_task =
                    tokio::task::spawn_local(async { unirun::block_on(async { 1 }) }).await;
                let in_run_until = std::panic::catch_unwind(|| unirun::block_on(async { 2 }));
                (in_task, in_run_until)
            });
            let said = message(&*in_task.unwrap_err().into_panic());
            assert!(said.contains("LocalSet"), "{said}");
            let said = message(&*in_run_until.unwrap_err());
            assert!(said.contains("LocalSet"), "{said}");
        });
    }

    /// `configure` at the top of a `#[unirun::main]` body replaces the
    /// default whose reactor the body's `block_on` entered: the body's
    /// sockets and timers, made after it, still work. In a child process:
    /// it configures the process.
    #[test]
    fn configure_at_the_top_of_block_on_keeps_its_tokio_io() {
        if !unirun_test_support::child::in_child_process(
            "tokio_io::configure_at_the_top_of_block_on_keeps_its_tokio_io",
        ) {
            return;
        }
        super::common::watchdog_this_test(|| {
            let echoed = unirun::block_on(async {
                unirun::configure(unirun::RuntimeConfig::default().max_workers(2)).unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let server = unirun::spawn(async move {
                    let (mut socket, _) = listener.accept().await?;
                    socket.write_all(b"conf").await
                });
                let mut client = tokio::net::TcpStream::connect(addr).await?;
                let mut buf = [0; 4];
                client.read_exact(&mut buf).await?;
                server.await.unwrap()?;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                std::io::Result::Ok(buf)
            });
            assert_eq!(&echoed.unwrap(), b"conf");
        });
    }

    /// `reset` on another thread while a `block_on` waits on a tokio timer:
    /// the timer made before the reset fires, and timers and tasks made
    /// after it work. In a child process: it resets the process.
    #[test]
    fn reset_during_block_on_keeps_its_tokio_timers() {
        if !unirun_test_support::child::in_child_process(
            "tokio_io::reset_during_block_on_keeps_its_tokio_timers",
        ) {
            return;
        }
        super::common::watchdog_this_test(|| {
            let (inside_tx, inside_rx) = std::sync::mpsc::channel();
            let (reset_tx, reset_rx) = tokio::sync::oneshot::channel::<()>();
            let waiter = std::thread::spawn(move || {
                unirun::block_on(async move {
                    let early = tokio::time::sleep(std::time::Duration::from_millis(1));
                    inside_tx.send(()).unwrap();
                    reset_rx.await.unwrap();
                    early.await;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    unirun::spawn(async {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        5
                    })
                    .await
                    .unwrap()
                })
            });
            inside_rx.recv().unwrap();
            unirun::reset();
            reset_tx.send(()).unwrap();
            assert_eq!(waiter.join().unwrap(), 5);
        });
    }

    /// A `#[unirun::test]` body that pauses tokio's clock pauses the one of
    /// unirun's reactor, which every other test of the process uses: the
    /// test fails, saying so and how to write it. (Through the call the
    /// attribute expands to; in a child process, whose clock it pauses.)
    #[test]
    fn a_unirun_test_that_pauses_the_clock_fails_saying_so() {
        if !unirun_test_support::child::in_child_process(
            "tokio_io::a_unirun_test_that_pauses_the_clock_fails_saying_so",
        ) {
            return;
        }
        super::common::watchdog_this_test(|| {
            // A test that leaves the clock alone passes.
            unirun::__block_on_test(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            });
            let caught = std::panic::catch_unwind(|| {
                unirun::__block_on_test(async {
                    tokio::time::pause();
                })
            });
            let said = message(&*caught.unwrap_err());
            assert!(said.contains("paused tokio's clock"), "{said}");
            assert!(
                said.contains("#[tokio::test(start_paused = true)]"),
                "{said}"
            );
        });
    }

    /// A task of a multi-thread runtime inside a unirun scope's `block_on`
    /// (which enters unirun's own, current-thread reactor) drives neither:
    /// a nested `unirun::block_on` there waits in `block_in_place`.
    #[test]
    fn block_on_in_a_scopes_block_on_in_a_multi_thread_task_completes() {
        super::common::watchdog_this_test(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let out = rt.block_on(async {
                tokio::spawn(async {
                    let run = unirun::Run::builder()
                        .flavor(unirun::Flavor::Threads)
                        .build()
                        .unwrap();
                    let three = run.block_on(async { unirun::block_on(async { 3 }) });
                    run.shutdown();
                    three
                })
                .await
                .unwrap()
            });
            assert_eq!(out, 3);
        });
    }

    /// A plain `tokio::spawn` from a unirun task runs on unirun's own
    /// reactor, a current-thread runtime: `unirun::block_on` there would
    /// block the thread that drives it, and panics saying so.
    #[test]
    fn block_on_in_a_tokio_task_on_unirun_s_reactor_panics_naming_it() {
        super::common::watchdog_this_test(|| {
            let inner = unirun::block_on(unirun::spawn(async {
                tokio::spawn(async { unirun::block_on(async { 5 }) }).await
            }))
            .unwrap();
            let said = message(&*inner.unwrap_err().into_panic());
            assert!(said.contains("unirun's own reactor"), "{said}");
        });
    }

    /// A `#[unirun::test]` body that ends with `reset()` leaves no default
    /// behind: the paused-clock check after the body starts none. (In a
    /// child process: it looks at the process's threads.)
    #[test]
    fn a_unirun_test_that_resets_leaves_no_default_running() {
        if !unirun_test_support::child::in_child_process(
            "tokio_io::a_unirun_test_that_resets_leaves_no_default_running",
        ) {
            return;
        }
        super::common::watchdog_this_test(|| {
            unirun::__block_on_test(async {
                unirun::spawn(async { 1 }).await.unwrap();
                unirun::reset();
            });
            assert!(!unirun::io::test_hooks::own_runtime_running());
            if super::common::lists_threads() {
                // Joined threads leave /proc a moment after their join.
                super::common::wait_until(|| super::common::threads_named("unirun") == 0);
            }
        });
    }
}
