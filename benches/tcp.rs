//! A TCP server of many small request/response connections, on 2 workers:
//! requests per second and server CPU per request for
//!
//! - `tokio`: tokio's multi-thread runtime with `tokio::net`;
//! - `unirun tokio-net`: a 2-worker unirun threads scope with `tokio::net`;
//! - `unirun async-net`: the same scope with smol's `async-net` (async-io);
//! - `async-executor`: two threads running one `async_executor::Executor`
//!   inside `async_io::block_on`, with `async-net` (smol's own way).
//!
//! # Method
//!
//! The client is a second process (this binary again, told so by an
//! environment variable): a current-thread tokio runtime with
//! [`CONNECTIONS`] connections, each sending a [`REQUEST`]-byte request and
//! waiting for its echo, over and over. The server counts the requests it
//! echoed. After a warm-up, one sample is a window of
//! `UNIRUN_BENCH_SECS` seconds (default 2): requests echoed in it per second,
//! and the server process's CPU time in it (`getrusage(RUSAGE_SELF)`: every
//! thread of the server, its reactor threads included; the client is
//! another process) per request. Contenders run one after the other in an
//! order rotated every run; `UNIRUN_BENCH_RUNS` runs (default 5). The
//! table gives, per contender, the median and range over the runs and the
//! ratio of medians to tokio's.
//!
//! ```text
//! cargo bench --bench tcp --features tokio-backend
//! cargo bench --bench tcp --features tokio-backend -- unirun   # contenders whose name contains a word
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` starts it) it makes a
//! quick smoke pass: one run, a short window.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent client connections.
const CONNECTIONS: usize = 64;
/// Bytes per request (and per response).
const REQUEST: usize = 16;
/// Tells this binary it is the client; the value is the server's address.
const CLIENT_ENV: &str = "UNIRUN_BENCH_TCP_CLIENT";
/// Workers of every server.
const WORKERS: usize = 2;

/// A running server: its address, and how to stop it.
struct Server {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
}

type Start = fn(Arc<AtomicU64>) -> Server;

fn main() {
    if let Ok(addr) = std::env::var(CLIENT_ENV) {
        return client(addr.parse().expect("the server's address"));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let env_number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    let runs = env_number("UNIRUN_BENCH_RUNS").map_or(if benching { 5 } else { 1 }, |v| v as usize);
    let window = Duration::from_secs_f64(env_number("UNIRUN_BENCH_SECS").unwrap_or(if benching {
        2.0
    } else {
        0.2
    }));
    let warmup = if benching {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(100)
    };

    let all: [(&str, Start); 4] = [
        ("tokio", tokio_server),
        ("unirun tokio-net", unirun_tokio_server),
        ("unirun async-net", unirun_smol_server),
        ("async-executor", async_executor_server),
    ];
    let contenders: Vec<(&str, Start)> = all
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!(
        "tcp: {CONNECTIONS} connections, {REQUEST}-byte requests, {WORKERS} workers, \
         {runs} runs of {window:?} (warm-up {warmup:?})"
    );
    // Per contender: (requests/s, CPU µs/request) of each run.
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); contenders.len()];
    for run in 0..runs {
        for k in 0..contenders.len() {
            let i = (run + k) % contenders.len();
            let (name, start) = contenders[i];
            let sample = measure(start, warmup, window);
            println!(
                "  run {run} {name:<18} {:>9.0} req/s {:>6.2} µs CPU/req",
                sample.0, sample.1
            );
            results[i].push(sample);
        }
    }
    println!(
        "\n{:<18} {:>24} {:>24} {:>8} {:>8}",
        "median [range]", "requests/s", "CPU µs/request", "rps/tok", "cpu/tok"
    );
    let base = contenders
        .iter()
        .position(|(name, _)| *name == "tokio")
        .map(|i| (median(&results[i], |s| s.0), median(&results[i], |s| s.1)));
    for ((name, _), samples) in contenders.iter().zip(&results) {
        let (rps, cpu) = (median(samples, |s| s.0), median(samples, |s| s.1));
        let (rlo, rhi) = range(samples, |s| s.0);
        let (clo, chi) = range(samples, |s| s.1);
        let ratios = base.map_or(String::new(), |(brps, bcpu)| {
            format!("{:>8.2} {:>8.2}", rps / brps, cpu / bcpu)
        });
        println!(
            "{name:<18} {rps:>8.0} [{rlo:>6.0}-{rhi:>6.0}] {cpu:>8.2} [{clo:>5.2}-{chi:>5.2}] {ratios}"
        );
    }
}

/// One sample: starts the server and a client process, and measures the
/// window after the warm-up.
fn measure(start: Start, warmup: Duration, window: Duration) -> (f64, f64) {
    let served = Arc::new(AtomicU64::new(0));
    let server = start(served.clone());
    let mut client = spawn_client(server.addr);
    std::thread::sleep(warmup);
    let (count0, cpu0, at0) = (served.load(Ordering::Relaxed), cpu_time(), Instant::now());
    std::thread::sleep(window);
    let (count1, cpu1, at1) = (served.load(Ordering::Relaxed), cpu_time(), Instant::now());
    let _ = client.kill();
    let _ = client.wait();
    (server.stop)();
    let requests = (count1 - count0).max(1) as f64;
    let rps = requests / (at1 - at0).as_secs_f64();
    let cpu_per_request = (cpu1 - cpu0).as_secs_f64() * 1e6 / requests;
    (rps, cpu_per_request)
}

fn spawn_client(addr: SocketAddr) -> Child {
    Command::new(std::env::current_exe().expect("this binary's path"))
        .env(CLIENT_ENV, addr.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the client process")
}

/// User + system CPU time of this process (all its threads).
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` only writes the struct we pass, which is a plain
    // C struct for which all-zero bytes are a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

fn median(samples: &[(f64, f64)], key: impl Fn(&(f64, f64)) -> f64) -> f64 {
    let mut values: Vec<f64> = samples.iter().map(key).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn range(samples: &[(f64, f64)], key: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let values: Vec<f64> = samples.iter().map(key).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    (lo, values.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

/// The client process: every connection sends a request and waits for its
/// echo, until the server goes away (or this process is killed).
fn client(addr: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the client's runtime");
    runtime.block_on(async move {
        let connections: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    let request = [i as u8; REQUEST];
                    let mut response = [0; REQUEST];
                    loop {
                        stream.write_all(&request).await?;
                        stream.read_exact(&mut response).await?;
                        assert_eq!(response, request, "the server echoes");
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        for connection in connections {
            let _ = connection.await;
        }
    });
}

/// Echoes one tokio connection, counting requests.
async fn echo_tokio(mut stream: tokio::net::TcpStream, served: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = [0; 4 * REQUEST];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
    }
}

/// Echoes one async-net connection, counting requests.
async fn echo_smol(mut stream: async_net::TcpStream, served: Arc<AtomicU64>) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = [0; 4 * REQUEST];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
    }
}

fn tokio_server(served: Arc<AtomicU64>) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo_tokio(stream, served.clone()));
        }
    });
    Server {
        addr,
        stop: Box::new(move || runtime.shutdown_timeout(Duration::from_secs(5))),
    }
}

fn unirun_scope() -> unirun::Run {
    unirun::Run::builder()
        .flavor(unirun::Flavor::Threads)
        .max_workers(WORKERS)
        .name("tcp")
        .build()
        .expect("a threads scope")
}

fn unirun_tokio_server(served: Arc<AtomicU64>) -> Server {
    let run = unirun_scope();
    let listener = run
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = run.handle();
    run.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            handle.spawn(echo_tokio(stream, served.clone())).detach();
        }
    })
    .detach();
    Server {
        addr,
        stop: Box::new(move || {
            run.shutdown_now();
        }),
    }
}

fn unirun_smol_server(served: Arc<AtomicU64>) -> Server {
    let run = unirun_scope();
    let listener = run
        .block_on(async_net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let handle = run.handle();
    run.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            handle.spawn(echo_smol(stream, served.clone())).detach();
        }
    })
    .detach();
    Server {
        addr,
        stop: Box::new(move || {
            run.shutdown_now();
        }),
    }
}

fn async_executor_server(served: Arc<AtomicU64>) -> Server {
    let executor = Arc::new(async_executor::Executor::new());
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let threads: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            std::thread::spawn(move || async_io::block_on(executor.run(stopped.recv())))
        })
        .collect();
    let listener = async_io::block_on(async_net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("address");
    let spawner = executor.clone();
    executor
        .spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                spawner.spawn(echo_smol(stream, served.clone())).detach();
            }
        })
        .detach();
    Server {
        addr,
        stop: Box::new(move || {
            drop(stop); // every `recv` fails: the threads leave `run`
            for thread in threads {
                let _ = thread.join();
            }
        }),
    }
}
