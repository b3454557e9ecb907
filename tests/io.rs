//! Async I/O inside unirun's tasks: tokio's sockets and timers (feature
//! `tokio-backend`) and smol's (`async-io`, `async-net`) on every backend.
//! Loopback sockets and channels only; every assertion is about data,
//! completion, order or threads, never about how long something took.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use unirun::{Flavor, Run};
use unirun_test_support::watchdog;

/// Tests that reset the process-wide state take this exclusively; every
/// other test holds it shared, so a reset never lands in their middle.
static GLOBAL: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner())
}

/// A plain-thread echo server on loopback for `connections` connections:
/// each reads up to EOF and writes everything back.
fn std_echo_server(connections: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..connections {
            let (mut peer, _) = listener.accept().unwrap();
            let mut data = Vec::new();
            peer.read_to_end(&mut data).unwrap();
            peer.write_all(&data).unwrap();
        }
    });
    (addr, server)
}

/// Connects with async-io, sends `msg`, half-closes and reads the echo.
async fn smol_round_trip(addr: SocketAddr, msg: Vec<u8>) -> Vec<u8> {
    let mut stream = async_io::Async::<std::net::TcpStream>::connect(addr)
        .await
        .unwrap();
    stream.write_all(&msg).await.unwrap();
    stream
        .get_ref()
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    back
}

/// An async-net echo server and client in one future, plus an async-io
/// timer: what a smol program does, run wherever it is polled.
async fn smol_program(tag: u8) -> Vec<u8> {
    let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async move {
        let (mut peer, _) = listener.accept().await.unwrap();
        let mut data = Vec::new();
        peer.read_to_end(&mut data).await.unwrap();
        peer.write_all(&data).await.unwrap();
    };
    let client = async move {
        async_io::Timer::after(Duration::from_millis(1)).await;
        let mut stream = async_net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(&[tag; 3]).await.unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await.unwrap();
        back
    };
    futures_lite::future::zip(server, client).await.1
}

/// Every flavor compiled in that runs tasks.
fn flavors() -> Vec<Flavor> {
    let mut all = vec![Flavor::Threads];
    if cfg!(all(unix, feature = "process-backend")) {
        all.push(Flavor::Processes);
    }
    if cfg!(feature = "tokio-backend") {
        all.push(Flavor::Tokio);
    }
    if cfg!(feature = "smol-backend") {
        all.push(Flavor::Smol);
    }
    all
}

#[test]
fn smol_sockets_and_timers_work_on_every_backend() {
    let _g = shared();
    watchdog("smol on every backend", || {
        for (i, flavor) in flavors().into_iter().enumerate() {
            let tag = i as u8 + 1;
            let run = Run::builder()
                .flavor(flavor)
                .max_workers(2)
                .build()
                .unwrap();
            let spawned = run.spawn(smol_program(tag));
            assert_eq!(run.block_on(spawned).unwrap(), [tag; 3], "{flavor:?} spawn");
            assert_eq!(
                run.block_on(smol_program(tag + 10)),
                [tag + 10; 3],
                "{flavor:?} block_on"
            );
            run.shutdown();
        }
        // The shared default and plain `block_on`.
        let shared = unirun::spawn(smol_program(42));
        assert_eq!(unirun::block_on(shared).unwrap(), [42; 3]);
        assert_eq!(unirun::block_on(smol_program(43)), [43; 3]);
    });
}

/// One worker, many sockets, and the caller blocked in `join`: the pool's
/// idle worker parks and the caller sleeps in the kernel, and still every
/// socket completes, as async-io's own thread drives its reactor.
#[test]
fn async_io_is_not_starved_by_parked_or_blocked_unirun_threads() {
    let _g = shared();
    watchdog("async-io starvation", || {
        const N: usize = 50;
        let (addr, server) = std_echo_server(N);
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(1)
            .build()
            .unwrap();
        let handles: Vec<_> = (0..N)
            .map(|i| run.spawn(smol_round_trip(addr, vec![i as u8; 64])))
            .collect();
        // A task blocking its worker in `join` (the worker's queues move to
        // another thread) while the others wait for their sockets.
        let blocked = run.spawn(async move {
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let echoed = blocked.join().unwrap();
        for (i, back) in echoed.iter().enumerate() {
            assert_eq!(back, &vec![i as u8; 64]);
        }
        server.join().unwrap();
        run.shutdown();
    });
}

#[cfg(not(feature = "tokio-backend"))]
#[test]
fn tokio_io_without_the_feature_panics_with_tokios_own_message() {
    let _g = shared();
    watchdog("tokio without the feature", || {
        let err = unirun::block_on(unirun::spawn(async {
            let _ = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        }))
        .unwrap_err();
        assert!(err.is_panic(), "{err}");
        let message = err.panic_message().unwrap_or_default();
        assert!(message.contains("no reactor running"), "{message}");
        let err = unirun::block_on(unirun::spawn(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }))
        .unwrap_err();
        assert!(err
            .panic_message()
            .unwrap_or_default()
            .contains("no reactor running"));
    });
}

#[cfg(feature = "tokio-backend")]
mod tokio_io {
    use super::*;
    use crate::common::{lists_threads, threads_named};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A tokio echo server and `clients` tokio clients, each sending its own
    /// bytes: returns what each client got back. Written for tokio, run
    /// wherever it is polled.
    async fn tokio_echo(clients: usize) -> Vec<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = async move {
            for _ in 0..clients {
                let (mut peer, _) = listener.accept().await.unwrap();
                let mut data = Vec::new();
                peer.read_to_end(&mut data).await.unwrap();
                peer.write_all(&data).await.unwrap();
            }
        };
        let client = async move {
            let mut out = Vec::new();
            for i in 0..clients {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.write_all(&[i as u8; 16]).await.unwrap();
                stream.shutdown().await.unwrap();
                let mut back = Vec::new();
                stream.read_to_end(&mut back).await.unwrap();
                out.push(back);
            }
            out
        };
        futures_lite::future::zip(server, client).await.1
    }

    fn expected(clients: usize) -> Vec<Vec<u8>> {
        (0..clients).map(|i| vec![i as u8; 16]).collect()
    }

    /// tokio's timers: a sleep completes, a timeout around a pending
    /// future elapses, one around a quick future does not.
    async fn tokio_timers() -> (bool, bool) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let elapsed =
            tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
        let quick = tokio::time::timeout(Duration::from_secs(60), async { 5 }).await;
        (elapsed.is_err(), quick == Ok(5))
    }

    #[test]
    fn tokio_sockets_and_timers_work_in_unirun_spawn() {
        let _g = shared();
        watchdog("tokio in unirun::spawn", || {
            let echo = unirun::spawn(tokio_echo(3));
            assert_eq!(unirun::block_on(echo).unwrap(), expected(3));
            let timers = unirun::spawn(tokio_timers());
            assert_eq!(unirun::block_on(timers).unwrap(), (true, true));
            // `tokio::spawn` finds the reactor's runtime too.
            let spawned = unirun::spawn(async { tokio::spawn(async { 3 }).await.unwrap() });
            assert_eq!(unirun::block_on(spawned).unwrap(), 3);
        });
    }

    #[test]
    fn tokio_sockets_and_timers_work_in_run_spawn_and_block_on_on_threads() {
        let _g = shared();
        watchdog("tokio on a threads scope", || {
            let run = Run::builder()
                .flavor(Flavor::Threads)
                .max_workers(2)
                .build()
                .unwrap();
            let echo = run.spawn(tokio_echo(4));
            assert_eq!(run.block_on(echo).unwrap(), expected(4));
            assert_eq!(run.block_on(tokio_echo(2)), expected(2));
            assert_eq!(run.block_on(tokio_timers()), (true, true));
            // The caller's thread leaves the context with `block_on`.
            assert!(tokio::runtime::Handle::try_current().is_err());
            run.shutdown();
        });
    }

    #[test]
    fn tokio_udp_works_in_a_task() {
        let _g = shared();
        watchdog("tokio udp", || {
            let run = Run::new(Flavor::Threads).unwrap();
            let got = run.spawn(async {
                let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                a.send_to(b"datagram", b.local_addr().unwrap())
                    .await
                    .unwrap();
                let mut buf = [0; 16];
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                buf[..n].to_vec()
            });
            assert_eq!(got.join().unwrap(), b"datagram");
        });
    }

    /// A task blocking its worker hands the worker's queues to a new
    /// thread; that thread runs inside the reactor's context too.
    #[test]
    fn tokio_io_works_on_the_thread_that_takes_over_a_blocked_worker() {
        let _g = shared();
        watchdog("tokio after a hand-off", || {
            let run = Run::builder()
                .flavor(Flavor::Threads)
                .max_workers(1)
                .build()
                .unwrap();
            let handle = run.handle();
            let outer = run.spawn(async move {
                // Blocks this worker until a task queued behind it, which
                // needs tokio's reactor, has run on the new thread.
                let inner = handle.spawn(async {
                    let on = std::thread::current().id();
                    (tokio_echo(1).await, on)
                });
                let before = std::thread::current().id();
                let (echo, on) = inner.join().unwrap();
                (echo, before, on)
            });
            let (echo, before, on) = outer.join().unwrap();
            assert_eq!(echo, expected(1));
            assert_ne!(before, on, "the inner task ran on the hand-off thread");
        });
    }

    #[test]
    fn the_trace_names_the_reactor() {
        let _g = shared();
        watchdog("trace reactor", || {
            let threads = Run::new(Flavor::Threads).unwrap();
            let reactor = threads.trace().reactor().unwrap();
            assert!(reactor.contains("unirun-io"), "{reactor}");
            assert!(threads.trace().to_string().contains("; reactor: "));
            let tokio = Run::new(Flavor::Tokio).unwrap();
            assert!(tokio
                .trace()
                .reactor()
                .unwrap()
                .contains("scope's tokio runtime"));
            let default = unirun::get_executor();
            drop(default);

            // Built inside a multi-thread runtime: unirun-io still serves it
            // (the ambient one could be dropped while the pool lives).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let inside = rt.block_on(async {
                Run::builder()
                    .flavor(Flavor::Threads)
                    .max_workers(1)
                    .build()
                    .unwrap()
            });
            let reactor = inside.trace().reactor().unwrap();
            assert!(
                reactor.contains("unirun-io") && reactor.contains("not borrowed"),
                "{reactor}"
            );
            assert_eq!(
                inside.block_on(inside.spawn(tokio_echo(2))).unwrap(),
                expected(2)
            );
            inside.shutdown();
            drop(rt);

            // Inside a current-thread runtime: unirun's own, and why.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let echo = rt.block_on(async {
                let inside = Run::builder()
                    .flavor(Flavor::Threads)
                    .max_workers(1)
                    .build()
                    .unwrap();
                let reactor = inside.trace().reactor().unwrap();
                assert!(reactor.contains("unirun-io") && reactor.contains("current-thread"));
                // Joined while blocking the current-thread runtime's only
                // thread: unirun-io, not that runtime, serves the sockets.
                let echo = inside.spawn(tokio_echo(2)).join().unwrap();
                inside.shutdown();
                echo
            });
            assert_eq!(echo, expected(2));
        });
    }

    /// unirun's context on its workers is not an ambient runtime: a scope
    /// built in a task decides as it would anywhere else.
    #[test]
    fn a_scope_built_inside_a_task_sees_no_ambient_runtime() {
        let _g = shared();
        watchdog("no ambient inside tasks", || {
            let run = Run::builder().name("outer-io").build().unwrap();
            let (has_context, resolved) = run
                .spawn(async {
                    let has_context = tokio::runtime::Handle::try_current().is_ok();
                    let inner = Run::builder().name("inner-io").build().unwrap();
                    (has_context, inner.trace().resolved())
                })
                .join()
                .unwrap();
            assert!(has_context);
            assert_eq!(resolved, Flavor::Threads);

            // A tokio scope's `block_on` inside a task: its runtime is
            // ambient there, as on any thread; the pool's flag comes back after.
            let tokio = Run::builder()
                .flavor(Flavor::Tokio)
                .max_workers(1)
                .build()
                .unwrap();
            let (inner, after) = run
                .spawn(async move {
                    let inner = tokio.block_on(async {
                        Run::builder()
                            .name("nested-io")
                            .build()
                            .unwrap()
                            .trace()
                            .resolved()
                    });
                    let after = Run::builder()
                        .name("after-io")
                        .build()
                        .unwrap()
                        .trace()
                        .resolved();
                    (inner, after)
                })
                .join()
                .unwrap();
            assert_eq!(inner, Flavor::Tokio);
            assert_eq!(after, Flavor::Threads);
        });
    }

    /// A forked child inherits the parent's runtime but not its thread: a
    /// pool it starts gets a runtime of its own, and dropping the
    /// inherited one (at `reset`) neither joins nor touches the parent's.
    #[cfg(all(unix, feature = "process-backend"))]
    #[test]
    fn a_forked_child_starts_its_own_runtime() {
        let _g = shared();
        watchdog("tokio in a forked child", || {
            // The parent's shared default holds a running runtime.
            assert_eq!(
                unirun::block_on(unirun::spawn(tokio_echo(1))).unwrap(),
                expected(1)
            );
            let options = unirun::ProcessOptions::default().timeout(Duration::from_secs(60));
            let child = unirun::to_process_with(options, || {
                let run = Run::builder()
                    .name("child-io")
                    .max_workers(1)
                    .build()
                    .unwrap();
                // Tasks run inline in a child; `block_on` enters the reactor.
                let echoed = run.block_on(tokio_echo(2));
                run.shutdown();
                unirun::reset();
                echoed.len()
            });
            assert_eq!(child.join().unwrap(), 2);
            // The parent's runtime was not disturbed.
            assert_eq!(
                unirun::block_on(unirun::spawn(tokio_echo(1))).unwrap(),
                expected(1)
            );
        });
    }

    #[test]
    fn reset_stops_unirun_io_and_sockets_and_timers_work_after_it() {
        let _g = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
        watchdog("reset and unirun-io", || {
            unirun::reset();
            assert!(!unirun::io::test_hooks::own_runtime_running());
            // Tokio and smol scopes do not start it.
            let tokio = Run::new(Flavor::Tokio).unwrap();
            assert_eq!(
                tokio.block_on(tokio.spawn(tokio_echo(1))).unwrap(),
                expected(1)
            );
            tokio.shutdown();
            assert!(!unirun::io::test_hooks::own_runtime_running());

            for round in 0..2 {
                let echo = unirun::block_on(unirun::spawn(tokio_echo(2))).unwrap();
                assert_eq!(echo, expected(2), "round {round}");
                let timers = unirun::block_on(unirun::spawn(tokio_timers())).unwrap();
                assert_eq!(timers, (true, true), "round {round}");
                assert!(unirun::io::test_hooks::own_runtime_running());
                if lists_threads() {
                    assert_eq!(threads_named("unirun-io"), 1, "round {round}");
                }
                // A scope of its own shares the same runtime and thread.
                let run = Run::new(Flavor::Threads).unwrap();
                assert_eq!(run.spawn(tokio_echo(1)).join().unwrap(), expected(1));
                if lists_threads() {
                    assert_eq!(threads_named("unirun-io"), 1, "round {round}");
                }
                run.shutdown();
                assert!(
                    unirun::io::test_hooks::own_runtime_running(),
                    "the default holds it"
                );

                unirun::reset();
                assert!(!unirun::io::test_hooks::own_runtime_running());
                // Joined before `reset` returned: none is left (a joined
                // thread leaves /proc a moment after its join returns).
                if lists_threads() {
                    common::wait_until(|| threads_named("unirun-io") == 0);
                }
            }

            // A scope that outlives a reset keeps its runtime until it ends.
            let run = Run::new(Flavor::Threads).unwrap();
            unirun::reset();
            assert!(unirun::io::test_hooks::own_runtime_running());
            assert_eq!(run.spawn(tokio_echo(1)).join().unwrap(), expected(1));
            run.shutdown();
            assert!(!unirun::io::test_hooks::own_runtime_running());
            if lists_threads() {
                common::wait_until(|| threads_named("unirun-io") == 0);
            }
        });
    }
}
