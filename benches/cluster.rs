//! The cluster backend against its floor on the same server: sequential
//! `Run::call` latency and `Run::map_call` throughput, next to raw
//! async-nats request/reply (a responder in this process, no JetStream,
//! no process pool). A hand-written harness: the binary is also its own
//! workers (`serve_if_worker` first).
//!
//! ```text
//! cargo bench --bench cluster --features cluster-backend --no-run
//! UNIRUN_NATS_SERVER=target/nats-venv/bin/nats-server target/release/deps/cluster-* --bench
//! ```
//!
//! `UNIRUN_BENCH_SAMPLES` (default 5) runs of each; medians and ranges.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use unirun::cluster::__private::async_nats;
use unirun::cluster::{self, ClusterOptions};
use unirun::{Flavor, Run};

const CALLS: u64 = 500;
const ITEMS: u64 = 5_000;
/// Requests the floor keeps in flight for throughput (the cluster's
/// default `max_pending` is larger; both are past saturation here).
const FLOOR_IN_FLIGHT: usize = 1024;

#[unirun::remote]
fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn main() {
    cluster::serve_if_worker();
    let Some(binary) = find_server() else {
        println!("cluster bench skipped: no nats-server (UNIRUN_NATS_SERVER or PATH)");
        return;
    };
    let samples: usize = std::env::var("UNIRUN_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let store = std::env::temp_dir().join(format!("unirun-cluster-bench-{port}"));
    let mut children = Children(vec![Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")]);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }

    let run = Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(ClusterOptions::new(&url))
        .build()
        .expect("cluster scope");
    for _ in 0..2 {
        children.0.push(
            Command::new(std::env::current_exe().unwrap())
                .env(cluster::WORKER_ENV, "1")
                .env(cluster::URL_ENV, &url)
                .env("UNIRUN_MAX_WORKERS", "2")
                .spawn()
                .expect("start a worker"),
        );
    }
    assert_eq!(run.call(square, 3).join().unwrap(), 9, "workers up");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let responder = async_nats::connect(&url).await.unwrap();
        // Four responders, as the cluster has two workers of two pullers.
        for _ in 0..4 {
            let mut sub = responder
                .queue_subscribe("floor.square", "floor".to_string())
                .await
                .unwrap();
            let nats = responder.clone();
            tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    let x = u64::from_le_bytes(msg.payload[..8].try_into().unwrap());
                    if let Some(reply) = msg.reply {
                        let _ = nats
                            .publish(reply, square(x).to_le_bytes().to_vec().into())
                            .await;
                    }
                }
            });
        }
        async_nats::connect(&url).await.unwrap()
    });
    let request = |x: u64| {
        let client = client.clone();
        async move {
            let reply = client
                .request("floor.square", x.to_le_bytes().to_vec().into())
                .await
                .unwrap();
            u64::from_le_bytes(reply.payload[..8].try_into().unwrap())
        }
    };

    let mut rows: Vec<(&str, Vec<Duration>)> = vec![
        ("call latency: cluster", Vec::new()),
        ("call latency: floor", Vec::new()),
        ("map throughput: cluster", Vec::new()),
        ("map throughput: floor", Vec::new()),
    ];
    for _ in 0..samples {
        let start = Instant::now();
        for i in 0..CALLS {
            assert_eq!(run.call(square, i).join().unwrap(), square(i));
        }
        rows[0].1.push(start.elapsed() / CALLS as u32);

        let start = Instant::now();
        rt.block_on(async {
            for i in 0..CALLS {
                assert_eq!(request(i).await, square(i));
            }
        });
        rows[1].1.push(start.elapsed() / CALLS as u32);

        let start = Instant::now();
        let out = run.map_call(square, 0..ITEMS);
        assert!(out
            .into_iter()
            .zip(0..ITEMS)
            .all(|(r, i)| r.unwrap() == square(i)));
        rows[2].1.push(start.elapsed());

        let start = Instant::now();
        let out: Vec<u64> = rt.block_on(
            futures::stream::iter(0..ITEMS)
                .map(request)
                .buffered(FLOOR_IN_FLIGHT)
                .collect(),
        );
        assert!(out.into_iter().zip(0..ITEMS).all(|(r, i)| r == square(i)));
        rows[3].1.push(start.elapsed());
    }

    println!("cluster bench: {samples} samples, 2 workers x 2 pool processes, loopback server");
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut medians = Vec::new();
    for (name, values) in &mut rows {
        let m = median(values);
        let (lo, hi) = (values[0], values[values.len() - 1]);
        if name.starts_with("map") {
            let rate = |d: Duration| ITEMS as f64 / d.as_secs_f64();
            println!(
                "{name:26} median {:>9.0} items/s (range {:.0}..{:.0})",
                rate(m),
                rate(hi),
                rate(lo)
            );
        } else {
            println!("{name:26} median {m:>9.2?} per call (range {lo:.2?}..{hi:.2?})");
        }
        medians.push(m);
    }
    println!(
        "latency ratio cluster/floor: {:.2}x (target <= 1.3x); throughput ratio cluster/floor: {:.2}x (target >= 0.8x)",
        medians[0].as_secs_f64() / medians[1].as_secs_f64(),
        medians[3].as_secs_f64() / medians[2].as_secs_f64(),
    );
    run.shutdown();
    drop(children);
    let _ = std::fs::remove_dir_all(&store);
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
