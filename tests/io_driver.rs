//! Who drives unirun's own tokio runtime (see `unirun::io`): idle workers
//! of the thread pools, so the waker of a socket that became ready runs on
//! a worker, not on `unirun-io`; and when every worker is busy, `unirun-io`
//! still drives. Every test runs under a watchdog; the ones about a
//! process's only pool run in a child process of their own.
#![cfg(feature = "tokio-backend")]

mod common;
#[path = "watchdog/mod.rs"]
mod watchdog;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use unirun::{Flavor, Run};
use watchdog::watchdog;

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
