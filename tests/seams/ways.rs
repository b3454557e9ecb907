//! The ways work runs in unirun: one function per column of the matrix.
//! Each checks the value it gets back; what goes wrong is a [`Bad`]: a
//! typed error (an `Err` the API hands back) or a failure (a wrong value,
//! a panic that crossed a task, a timeout that stands for a hang).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use unirun::{Flavor, JoinError, Run};

use super::contexts::Ctx;
use super::probe;

/// One way work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// `unirun::spawn` and `Run::spawn`.
    Task,
    /// `unirun::to_thread`: two closures that wait for each other.
    Blocking,
    /// `unirun::time::sleep` in `block_on` and in a task.
    Timer,
    /// A `tokio::net` loopback echo inside a unirun task.
    TokioSocket,
    /// An `async-net` loopback echo inside a unirun task.
    SmolSocket,
    /// `get_executor().call` on the shared process pool.
    CallShared,
    /// `Run::call` on a `Flavor::Processes` scope.
    CallScope,
    /// `unirun::to_process`.
    ToProcess,
    /// `compat::tokio::task::spawn_blocking`, and a runtime drop that must
    /// wait for a running closure, as tokio's does.
    CompatTokioSpawnBlocking,
    /// `compat::tokio::task::spawn` with a tokio timer inside.
    CompatTokioSpawn,
    /// `compat::smol::unblock`.
    CompatSmolUnblock,
    /// `compat::smol::spawn` driven by `compat::smol::block_on`.
    CompatSmolSpawn,
    /// `compat::thread` (its `Builder`, so a refused thread is an
    /// `io::Error`): a receiver and a sender on two threads.
    CompatThread,
}

/// Every way, in the matrix's order.
pub(crate) const WAYS: &[Way] = &[
    Way::Task,
    Way::Blocking,
    Way::Timer,
    Way::TokioSocket,
    Way::SmolSocket,
    Way::CallShared,
    Way::CallScope,
    Way::ToProcess,
    Way::CompatTokioSpawnBlocking,
    Way::CompatTokioSpawn,
    Way::CompatSmolUnblock,
    Way::CompatSmolSpawn,
    Way::CompatThread,
];

impl Way {
    /// The column label (also how the parent names the way to a cell).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Way::Task => "task",
            Way::Blocking => "to_thread",
            Way::Timer => "timer",
            Way::TokioSocket => "tokio socket",
            Way::SmolSocket => "smol socket",
            Way::CallShared => "call (shared pool)",
            Way::CallScope => "call (Processes scope)",
            Way::ToProcess => "to_process",
            Way::CompatTokioSpawnBlocking => "compat tokio spawn_blocking",
            Way::CompatTokioSpawn => "compat tokio spawn",
            Way::CompatSmolUnblock => "compat smol unblock",
            Way::CompatSmolSpawn => "compat smol spawn",
            Way::CompatThread => "compat thread",
        }
    }

    /// The way with this [`name`](Way::name).
    pub(crate) fn from_name(name: &str) -> Option<Way> {
        WAYS.iter().copied().find(|way| way.name() == name)
    }
}

/// What went wrong in a way.
#[derive(Debug)]
pub(crate) enum Bad {
    /// The API handed back an error (acceptable only where the context
    /// allows one, see `errors_allowed`).
    Typed(String),
    /// A wrong value, a panic from inside the work, or a hang cut short.
    Fail(String),
    /// The context could not be set up here (the reason is printed).
    Skip(String),
}

type Outcome = Result<(), Bad>;

/// A unirun `JoinError`: a panic or a timeout is a failure (no way here
/// panics or sets a timeout), anything else a typed error.
fn joined<T>(what: &str, result: Result<T, JoinError>) -> Result<T, Bad> {
    result.map_err(|err| {
        if err.is_panic() || err.is_timeout() {
            Bad::Fail(format!("{what}: {err}"))
        } else {
            Bad::Typed(format!("{what}: {err}"))
        }
    })
}

fn typed(what: &str, err: impl std::fmt::Display) -> Bad {
    Bad::Typed(format!("{what}: {err}"))
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(Bad::Fail(format!("{what}: got {got:?}, expected {want:?}")))
    }
}

/// Work of `way` started and not yet joined, for the ways that hand back
/// a handle: the join, as a closure. Held across a `configure()` or
/// `reset()` it is work in flight while the shared default is replaced.
pub(crate) type InFlight = Box<dyn FnOnce() -> Outcome>;

/// Starts `way`'s work without joining it, where the way has a handle.
/// With `cancel_ok`, a join that says "cancelled" counts as right (a
/// `reset()` cancels what the old pool had not started).
pub(crate) fn start(way: Way, cancel_ok: bool) -> Option<InFlight> {
    let joined = move |what: &str, result: Result<u64, JoinError>| match result {
        Err(err) if cancel_ok && err.is_cancelled() => Ok(None),
        other => joined(what, other).map(Some),
    };
    let expect = |what: &str, got: Option<u64>, want: u64| match got {
        None => Ok(()),
        Some(got) => expect(what, got, want),
    };
    match way {
        Way::Task => {
            let task = unirun::spawn(async {
                futures_lite::future::yield_now().await;
                3u64
            });
            Some(Box::new(move || {
                expect("task in flight", joined("task in flight", task.join())?, 3)
            }))
        }
        Way::Blocking => {
            let closure = unirun::to_thread(|| 4u64);
            Some(Box::new(move || {
                expect(
                    "to_thread in flight",
                    joined("to_thread in flight", closure.join())?,
                    4,
                )
            }))
        }
        Way::Timer => {
            let task = unirun::spawn(async {
                unirun::time::sleep(Duration::from_millis(5)).await;
                5u64
            });
            Some(Box::new(move || {
                expect(
                    "timer in flight",
                    joined("timer in flight", task.join())?,
                    5,
                )
            }))
        }
        Way::CallShared => {
            let call = unirun::get_executor().call(square, 6);
            Some(Box::new(move || {
                expect("call in flight", joined("call in flight", call.join())?, 36)
            }))
        }
        Way::ToProcess => {
            let child = unirun::to_process(|| 7u64);
            Some(Box::new(move || {
                expect(
                    "to_process in flight",
                    joined("to_process in flight", child.join())?,
                    7,
                )
            }))
        }
        _ => None,
    }
}

/// Runs `way` once in this process.
pub(crate) fn run(way: Way, ctx: Ctx) -> Outcome {
    match way {
        Way::Task => task(),
        Way::Blocking => blocking(),
        Way::Timer => timer(),
        Way::TokioSocket => tokio_socket(),
        Way::SmolSocket => smol_socket(),
        Way::CallShared => call_shared(ctx),
        Way::CallScope => call_scope(ctx),
        Way::ToProcess => to_process(),
        Way::CompatTokioSpawnBlocking => compat_tokio_spawn_blocking(),
        Way::CompatTokioSpawn => compat_tokio_spawn(),
        Way::CompatSmolUnblock => compat_smol_unblock(),
        Way::CompatSmolSpawn => compat_smol_spawn(),
        Way::CompatThread => compat_thread(),
    }
}

fn task() -> Outcome {
    let shared = unirun::spawn(async {
        futures_lite::future::yield_now().await;
        40 + 2
    });
    expect("unirun::spawn", joined("unirun::spawn", shared.join())?, 42)?;
    let run = Run::builder()
        .name("seam-task")
        .build()
        .map_err(|e| typed("Run::build", e))?;
    let scoped = run.spawn(async { 7 });
    expect("Run::spawn", joined("Run::spawn", scoped.join())?, 7)?;
    run.shutdown();
    Ok(())
}

fn blocking() -> Outcome {
    // `waiter` blocks until `sender` runs: the lane must run both at once.
    // If `sender` never runs, its closure (and `tx`) is dropped and the
    // waiter's `recv` ends with an error, so no path waits forever.
    let (tx, rx) = mpsc::channel::<u32>();
    let waiter = unirun::to_thread(move || rx.recv().unwrap_or(0));
    let sender = unirun::to_thread(move || tx.send(5).is_ok());
    expect(
        "to_thread sender",
        joined("to_thread", sender.join())?,
        true,
    )?;
    expect("to_thread waiter", joined("to_thread", waiter.join())?, 5)
}

fn timer() -> Outcome {
    unirun::block_on(unirun::time::sleep(Duration::from_millis(5)));
    let task = unirun::spawn(async {
        unirun::time::sleep(Duration::from_millis(5)).await;
        7
    });
    expect("sleep in a task", joined("timer task", task.join())?, 7)
}

fn tokio_socket() -> Outcome {
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
            stream.write_all(b"seam").await?;
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(back)
        };
        let (served, back) = futures_lite::future::zip(server, client).await;
        served?;
        back
    });
    let back = joined("tokio socket task", echo.join())?.map_err(|e| typed("tokio::net", e))?;
    expect("tokio echo", &back, b"seam")
}

fn smol_socket() -> Outcome {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let echo = unirun::spawn(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = async move {
            let (mut peer, _) = listener.accept().await?;
            let mut buf = [0u8; 4];
            peer.read_exact(&mut buf).await?;
            peer.write_all(&buf).await?;
            Ok::<_, std::io::Error>(())
        };
        let client = async move {
            let mut stream = async_net::TcpStream::connect(addr).await?;
            stream.write_all(b"seam").await?;
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(back)
        };
        let (served, back) = futures_lite::future::zip(server, client).await;
        served?;
        back
    });
    let back = joined("smol socket task", echo.join())?.map_err(|e| typed("async-net", e))?;
    expect("smol echo", &back, b"seam")
}

fn square(x: u64) -> u64 {
    x * x
}

/// With `SIGPIPE` at its default, the pool's idle workers are killed (as
/// the OOM killer would) and the next call must give a value or a typed
/// error, never kill this process.
fn call_after_workers_died(ctx: Ctx, call: impl Fn(u64) -> unirun::JoinHandle<u64>) -> Outcome {
    expect("call", joined("call", call(7).join())?, 49)?;
    if ctx == Ctx::SigpipeDefault {
        probe::kill_idle_workers();
        expect(
            "call after its workers were killed",
            joined("call after its workers were killed", call(8).join())?,
            64,
        )?;
    }
    Ok(())
}

fn call_shared(ctx: Ctx) -> Outcome {
    let executor = unirun::get_executor();
    call_after_workers_died(ctx, |x| executor.call(square, x))
}

fn call_scope(ctx: Ctx) -> Outcome {
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .name("seam-procs")
        .max_workers(2)
        .build()
        .map_err(|e| typed("Run::build(Processes)", e))?;
    call_after_workers_died(ctx, |x| run.call(square, x))?;
    run.shutdown();
    Ok(())
}

fn to_process() -> Outcome {
    let child = unirun::to_process(|| 6u32 * 7);
    expect("to_process", joined("to_process", child.join())?, 42)
}

/// A current-thread runtime: it starts no thread of its own, so where
/// threads cannot be created what fails is unirun's part, not tokio's.
fn tokio_runtime() -> Result<tokio::runtime::Runtime, Bad> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| typed("tokio runtime", e))
}

fn compat_joined<T>(
    what: &str,
    result: Result<T, unirun::compat::tokio::task::JoinError>,
) -> Result<T, Bad> {
    result.map_err(|err| {
        if err.is_panic() {
            Bad::Fail(format!("{what}: {err}"))
        } else {
            Bad::Typed(format!("{what}: {err}"))
        }
    })
}

fn compat_tokio_spawn_blocking() -> Outcome {
    use unirun::compat::tokio::task;
    let rt = tokio_runtime()?;
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    rt.block_on(async move {
        let three = compat_joined("spawn_blocking", task::spawn_blocking(|| 3).await)?;
        expect("spawn_blocking", three, 3)?;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        // Left running when the runtime drops: tokio's drop waits for it.
        // The sleep is the closure's work (a write on shutdown), not a
        // synchronization: the check below holds whatever its length.
        let _running = task::spawn_blocking(move || {
            let _ = started_tx.send(());
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, Ordering::SeqCst);
        });
        started_rx
            .await
            .map_err(|_| Bad::Fail("the blocking closure never started".into()))
    })?;
    drop(rt);
    if finished.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(Bad::Fail(
            "the runtime dropped before its running spawn_blocking closure finished \
             (tokio waits for it)"
                .into(),
        ))
    }
}

fn compat_tokio_spawn() -> Outcome {
    let rt = tokio_runtime()?;
    let nine = rt.block_on(async {
        unirun::compat::tokio::task::spawn(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            9
        })
        .await
    });
    expect(
        "compat tokio spawn",
        compat_joined("compat tokio spawn", nine)?,
        9,
    )
}

/// Runs a compat::smol way. smol's `Task` has no error to return: where
/// unirun could not start the task (no thread), awaiting it panics with
/// the `JoinError`'s text, as smol's own executor panics when it cannot
/// start a thread. That panic, and only that one, counts as the typed
/// error; any other panic still fails.
fn smol_mirror<T>(what: &str, body: impl FnOnce() -> T) -> Result<T, Bad> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).map_err(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a non-string panic")
            .to_string();
        if text.starts_with("task could not start: ") {
            Bad::Typed(format!("{what} panicked, as smol's does: {text}"))
        } else {
            Bad::Fail(format!("{what} panicked: {text}"))
        }
    })
}

fn compat_smol_unblock() -> Outcome {
    let four = smol_mirror("compat smol unblock", || {
        unirun::compat::smol::block_on(unirun::compat::smol::unblock(|| 4))
    })?;
    expect("compat smol unblock", four, 4)
}

fn compat_smol_spawn() -> Outcome {
    use unirun::compat::smol;
    let five = smol_mirror("compat smol spawn", || {
        smol::block_on(smol::spawn(async {
            futures_lite::future::yield_now().await;
            5
        }))
    })?;
    expect("compat smol spawn", five, 5)
}

fn compat_thread() -> Outcome {
    use unirun::compat::thread;
    // As in `blocking`: a sender that never starts drops `tx`, so the
    // receiver's `recv` ends either way.
    let (tx, rx) = mpsc::channel::<u32>();
    let receiver = thread::Builder::new()
        .spawn(move || rx.recv().unwrap_or(0))
        .map_err(|e| typed("compat::thread spawn", e))?;
    let sender = thread::Builder::new()
        .spawn(move || tx.send(1).is_ok())
        .map_err(|e| typed("compat::thread spawn", e))?;
    let got = receiver
        .join()
        .map_err(|_| Bad::Fail("compat::thread receiver panicked".into()))?;
    let sent = sender
        .join()
        .map_err(|_| Bad::Fail("compat::thread sender panicked".into()))?;
    expect("compat thread send", sent, true)?;
    expect("compat thread recv", got, 1)
}
