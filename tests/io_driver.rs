//! Who drives unirun's own tokio runtime (see `unirun::io`): idle workers
//! of the thread pools, so the waker of a socket that became ready runs on
//! a worker, not on `unirun-io`; and when every worker is busy, `unirun-io`
//! still drives. Every test runs under a watchdog; the ones about a
//! process's only pool run in a child process of their own.
#![cfg(feature = "tokio-backend")]

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use common::watchdog_this_test as watchdog;
use unirun::{Flavor, Run};

/// Round trips per connection.
const ROUNDS: usize = 20;

/// The names of the threads a future's wakers were called on.
#[derive(Default)]
struct WakeThreads(Mutex<Vec<String>>);

impl WakeThreads {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Polls `F` with a waker that records the thread it is woken on.
struct Spy<F> {
    future: Pin<Box<F>>,
    seen: Arc<WakeThreads>,
}

struct SpyWaker {
    inner: Waker,
    seen: Arc<WakeThreads>,
}

impl Wake for SpyWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.seen.0.lock().unwrap().push(name);
        self.inner.wake_by_ref();
    }
}

impl<F: Future> Future for Spy<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(SpyWaker {
            inner: cx.waker().clone(),
            seen: self.seen.clone(),
        }));
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

fn spy<F: Future>(future: F, seen: &Arc<WakeThreads>) -> Spy<F> {
    Spy {
        future: Box::pin(future),
        seen: seen.clone(),
    }
}

/// A plain-thread client: connects, then `ROUNDS` times writes one byte
/// and reads its echo.
fn std_client(addr: SocketAddr) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stream = StdStream::connect(addr).unwrap();
        for round in 0..ROUNDS {
            stream.write_all(&[round as u8]).unwrap();
            let mut echo = [0; 1];
            stream.read_exact(&mut echo).unwrap();
            assert_eq!(echo[0], round as u8);
        }
    })
}

fn scope(name: &str, workers: usize) -> Run {
    Run::builder()
        .flavor(Flavor::Threads)
        .max_workers(workers)
        .name(name)
        .build()
        .unwrap()
}

#[test]
fn tokio_readiness_is_handled_on_a_worker() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    watchdog(|| {
        let run = scope("iodrv-tokio", 2);
        let listener = run
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let client = std_client(listener.local_addr().unwrap());
        let seen = Arc::new(WakeThreads::default());
        let spied = seen.clone();
        run.block_on(run.spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut byte = [0; 1];
            for _ in 0..ROUNDS {
                spy(stream.read_exact(&mut byte), &spied).await.unwrap();
                stream.write_all(&byte).await.unwrap();
            }
        }))
        .unwrap();
        client.join().unwrap();
        let names = seen.names();
        // Before workers drove the runtime, every one was `unirun-io`.
        assert!(
            names.iter().any(|name| name != "unirun-io"),
            "every readiness wake ran on unirun-io: {names:?}"
        );
    });
}

/// Keeps the pool's only worker busy (a poll that spins, never parking)
/// while `body` runs, then lets it go.
fn with_the_worker_busy(run: &Run, body: impl FnOnce()) {
    let release = Arc::new(AtomicBool::new(false));
    let (running_tx, running) = std::sync::mpsc::channel();
    let flag = release.clone();
    let busy = run.spawn(async move {
        running_tx.send(()).unwrap();
        while !flag.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    });
    running.recv().unwrap();
    body();
    release.store(true, Ordering::SeqCst);
    run.block_on(busy).unwrap();
}

#[test]
fn tokio_io_is_driven_while_every_worker_is_busy() {
    if !common::in_child_process("tokio_io_is_driven_while_every_worker_is_busy") {
        return;
    }
    use tokio::io::AsyncReadExt;
    watchdog(|| {
        let run = scope("iodrv-busy", 1);
        with_the_worker_busy(&run, || {
            // Awaited on this thread: only unirun-io can drive it now.
            let listener = StdListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                let (mut peer, _) = listener.accept().unwrap();
                peer.write_all(b"ready").unwrap();
            });
            let got = run.block_on(async move {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let mut buf = [0; 5];
                stream.read_exact(&mut buf).await.unwrap();
                buf
            });
            assert_eq!(&got, b"ready");
            peer.join().unwrap();
        });
        run.shutdown();
        assert!(
            !unirun::io::__own_runtime_running(),
            "its last pool stopped it"
        );
    });
}

/// A pool whose idle worker drives the runtime shuts down, and the next
/// pool starts a new runtime that its workers drive again.
#[test]
fn a_driving_pool_shuts_down_and_the_next_one_drives() {
    if !common::in_child_process("a_driving_pool_shuts_down_and_the_next_one_drives") {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    watchdog(|| {
        for round in 0..3u8 {
            let run = scope("iodrv-again", 2);
            let listener = run
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let server = run.spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut byte = [0; 1];
                stream.read_exact(&mut byte).await.unwrap();
                stream.write_all(&byte).await.unwrap();
            });
            let mut client = StdStream::connect(addr).unwrap();
            client.write_all(&[round]).unwrap();
            let mut echo = [0; 1];
            client.read_exact(&mut echo).unwrap();
            assert_eq!(echo[0], round);
            run.block_on(server).unwrap();
            if round % 2 == 0 {
                run.shutdown();
            } else {
                assert!(run.shutdown_timeout(std::time::Duration::from_secs(30)));
            }
            assert!(
                !unirun::io::__own_runtime_running(),
                "round {round}: still running"
            );
        }
    });
}

/// Waits (yielding) until a pool worker drives the runtime: an idle
/// worker always tries, so this ends once one is idle.
fn until_a_worker_drives() {
    while !unirun::io::__worker_drives() {
        std::thread::yield_now();
    }
}

/// A task of the runtime (plain `tokio::spawn`; it may run on the worker
/// that drives the runtime) spawns a pool task, then spins until that task
/// has run: the pool task must not wait for the spinning thread.
#[test]
fn a_pool_task_spawned_by_a_tokio_task_runs_while_the_tokio_task_spins() {
    watchdog(|| {
        let run = scope("iodrv-tokio-spawn", 2);
        let pool = run.handle();
        let (done_tx, done) = std::sync::mpsc::channel();
        run.block_on(run.spawn(async move {
            tokio::spawn(async move {
                let ran = Arc::new(AtomicBool::new(false));
                let flag = ran.clone();
                let _task = pool.spawn(async move { flag.store(true, Ordering::SeqCst) });
                while !ran.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                done_tx.send(()).unwrap();
            });
        }))
        .unwrap();
        done.recv().unwrap();
    });
}

/// A task of the runtime waits synchronously for a pool task it spawned,
/// with `JoinHandle::join` and with a plain thread park.
#[test]
fn a_tokio_task_waits_synchronously_for_a_pool_task() {
    watchdog(|| {
        let run = scope("iodrv-tokio-join", 2);
        let (pool, pool_too) = (run.handle(), run.handle());
        let (got_tx, got) = std::sync::mpsc::channel();
        let got_too = got_tx.clone();
        run.block_on(run.spawn(async move {
            tokio::spawn(async move {
                got_tx
                    .send(pool.spawn(async { 42 }).join().unwrap())
                    .unwrap();
            });
            tokio::spawn(async move {
                got_too
                    .send(park_on(pool_too.spawn(async { 43 })).unwrap())
                    .unwrap();
            });
        }))
        .unwrap();
        let mut values = [got.recv().unwrap(), got.recv().unwrap()];
        values.sort();
        assert_eq!(values, [42, 43]);
    });
}

/// Polls `future` on this thread, parking the thread between polls.
fn park_on<F: Future>(future: F) -> F::Output {
    struct Unparker(std::thread::Thread);
    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

/// A readiness hands the driving worker a task that spins until a second
/// socket's task has run; that socket becomes ready only once the first
/// task spins. Another thread (an idle worker or `unirun-io`) must take
/// over driving.
#[test]
fn a_readiness_is_handled_while_the_driver_runs_a_long_task() {
    use tokio::io::AsyncReadExt;
    watchdog(|| {
        let run = scope("iodrv-takeover", 2);
        let listener = run
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut first = StdStream::connect(addr).unwrap();
        let mut second = StdStream::connect(addr).unwrap();
        let (mut one, mut two) = run.block_on(async {
            (
                listener.accept().await.unwrap().0,
                listener.accept().await.unwrap().0,
            )
        });
        let second_ran = Arc::new(AtomicBool::new(false));
        let (spinning_tx, spinning) = std::sync::mpsc::channel();
        let flag = second_ran.clone();
        let long = run.spawn(async move {
            let mut byte = [0; 1];
            one.read_exact(&mut byte).await.unwrap();
            spinning_tx.send(()).unwrap();
            while !flag.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
        let flag = second_ran.clone();
        let short = run.spawn(async move {
            let mut byte = [0; 1];
            two.read_exact(&mut byte).await.unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        until_a_worker_drives();
        first.write_all(&[1]).unwrap();
        spinning.recv().unwrap();
        second.write_all(&[2]).unwrap();
        run.block_on(short).unwrap();
        run.block_on(long).unwrap();
    });
}

/// `shutdown_timeout` returns while a task of the runtime blocks the
/// thread that drives it; once it is released, a new pool's timers work.
#[test]
fn shutdown_timeout_returns_while_a_tokio_task_blocks_the_driver() {
    if !common::in_child_process("shutdown_timeout_returns_while_a_tokio_task_blocks_the_driver") {
        return;
    }
    watchdog(|| {
        let run = scope("iodrv-stuck", 2);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        run.block_on(run.spawn(async move {
            tokio::spawn(async move {
                started_tx.send(()).unwrap();
                let _ = released.recv();
            });
        }))
        .unwrap();
        started.recv().unwrap();
        // Returns by its deadline (it would wait for the release forever
        // otherwise); whether it was clean depends on where the task ran.
        let _clean = run.shutdown_timeout(std::time::Duration::from_millis(100));
        release.send(()).unwrap();
        let run = scope("iodrv-after", 2);
        let value = run.block_on(run.spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            5
        }));
        assert_eq!(value.unwrap(), 5);
    });
}

/// The shared default's idle worker drives the runtime when `reset` stops
/// it, many times; tokio I/O works after each.
#[test]
fn reset_while_a_default_worker_drives() {
    if !common::in_child_process("reset_while_a_default_worker_drives") {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    watchdog(|| {
        for round in 0..10u8 {
            let (addr_tx, addr) = std::sync::mpsc::channel();
            let server = unirun::spawn(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut byte = [0; 1];
                stream.read_exact(&mut byte).await.unwrap();
                stream.write_all(&byte).await.unwrap();
            });
            let mut client = StdStream::connect(addr.recv().unwrap()).unwrap();
            client.write_all(&[round]).unwrap();
            let mut echo = [0; 1];
            client.read_exact(&mut echo).unwrap();
            assert_eq!(echo[0], round);
            server.join().unwrap();
            let _sleeper = unirun::spawn(async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            });
            until_a_worker_drives();
            unirun::reset();
        }
    });
}

/// A fork made from a task of the runtime (it may run on the driving
/// worker, whose core is parked): the child spawns on its default pool
/// and uses a tokio timer.
#[cfg(all(unix, feature = "process-backend"))]
#[test]
fn fork_from_a_tokio_task_of_the_runtime() {
    if !common::in_child_process("fork_from_a_tokio_task_of_the_runtime") {
        return;
    }
    watchdog(|| {
        let (got_tx, got) = std::sync::mpsc::channel();
        unirun::spawn(async move {
            tokio::spawn(async move {
                let options = unirun::process::ProcessOptions::default()
                    .timeout(std::time::Duration::from_secs(30));
                let child = unirun::to_process_with(options, || {
                    unirun::block_on(async {
                        unirun::spawn(async {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                            40u32
                        })
                        .await
                        .unwrap()
                            + 2
                    })
                });
                got_tx
                    .send(child.await.map_err(|err| err.to_string()))
                    .unwrap();
            });
        })
        .detach();
        assert_eq!(got.recv().unwrap(), Ok(42));
    });
}

/// A pool task woken by a socket (so it runs right after its worker left
/// the runtime's `block_on`) builds and blocks on a tokio runtime of its
/// own, and blocks a plain thread on unirun's through its handle.
#[test]
fn a_task_woken_by_the_driver_blocks_on_runtimes() {
    watchdog(|| {
        let run = scope("iodrv-nest", 2);
        let listener = run
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let task = run.spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            let own = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let seven = own.block_on(async { 7 });
            drop(own);
            let handle = tokio::runtime::Handle::current();
            let eight = std::thread::spawn(move || handle.block_on(async { 8 }))
                .join()
                .unwrap();
            seven + eight
        });
        until_a_worker_drives();
        let _client = StdStream::connect(addr).unwrap();
        assert_eq!(run.block_on(task).unwrap(), 15);
    });
}

/// Spawns from outside reach workers parked in the runtime, on a pool of
/// one worker and of two.
#[test]
fn spawns_from_outside_reach_a_driving_worker() {
    watchdog(|| {
        for workers in [1, 2] {
            let run = scope("iodrv-outside", workers);
            for round in 0..1000u32 {
                if round % 100 == 0 {
                    until_a_worker_drives();
                }
                assert_eq!(
                    run.block_on(run.spawn(async move { round })).unwrap(),
                    round
                );
            }
            run.shutdown();
        }
    });
}

/// Scopes built and shut down (at once, or with a deadline) while their
/// workers may drive the runtime.
#[test]
fn driving_scopes_churn() {
    watchdog(|| {
        for round in 0..20 {
            let run = scope("iodrv-churn", 2);
            let listener = run
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            run.block_on(run.spawn(async move { drop(listener) }))
                .unwrap();
            until_a_worker_drives();
            if round % 2 == 0 {
                run.shutdown_now();
            } else {
                assert!(run.shutdown_timeout(std::time::Duration::from_secs(30)));
            }
        }
    });
}
