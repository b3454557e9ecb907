//! The cluster backend against its floors on the same server: sequential
//! `Run::call` latency and `Run::map_call` throughput, next to
//!
//! - raw async-nats request/reply: responders in this process, no
//!   JetStream, no process pool (the issue's floor);
//! - a JetStream floor of the cluster's own shape: publish to a
//!   work-queue stream with a message id (awaiting the server's ack), a
//!   responder in this process pulling from a durable consumer, replying
//!   to a header's inbox and acknowledging; no process pool, no second
//!   process;
//! - the process pool a worker runs each job in, alone (two processes,
//!   each call awaited on a tokio thread as a worker does): what a worker
//!   adds to the wire.
//!
//! A hand-written harness: the binary is also its own workers
//! (`serve_if_worker` first).
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
    // Ready once it accepts connections; bounded, and a server that exits
    // (a bad flag) ends the wait too.
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = children.0[0].try_wait().ok().flatten();
        assert!(exited.is_none(), "nats-server exited: {exited:?}");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nats-server did not listen within 30 s"
        );
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
    let js_floor = rt.block_on(JetStreamFloor::start(&url));
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
        ("call latency: js floor", Vec::new()),
        ("map throughput: cluster", Vec::new()),
        ("map throughput: floor", Vec::new()),
        ("map throughput: js floor", Vec::new()),
        ("call latency: pool, awaited", Vec::new()),
        ("map throughput: pool", Vec::new()),
    ];
    // A process pool as wide as one worker's.
    let pool = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(2)
        .build()
        .expect("process scope");
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
        rt.block_on(async {
            for i in 0..CALLS {
                assert_eq!(js_floor.call(i).await, square(i));
            }
        });
        rows[2].1.push(start.elapsed() / CALLS as u32);

        let start = Instant::now();
        let out = run.map_call(square, 0..ITEMS);
        assert!(out
            .into_iter()
            .zip(0..ITEMS)
            .all(|(r, i)| r.unwrap() == square(i)));
        rows[3].1.push(start.elapsed());

        let start = Instant::now();
        let out: Vec<u64> = rt.block_on(
            futures::stream::iter(0..ITEMS)
                .map(request)
                .buffered(FLOOR_IN_FLIGHT)
                .collect(),
        );
        assert!(out.into_iter().zip(0..ITEMS).all(|(r, i)| r == square(i)));
        rows[4].1.push(start.elapsed());

        let start = Instant::now();
        let out: Vec<u64> = rt.block_on(
            futures::stream::iter(0..ITEMS)
                .map(|i| js_floor.call(i))
                .buffered(FLOOR_IN_FLIGHT)
                .collect(),
        );
        assert!(out.into_iter().zip(0..ITEMS).all(|(r, i)| r == square(i)));
        rows[5].1.push(start.elapsed());

        // A worker awaits its pool's calls on its tokio thread.
        let start = Instant::now();
        rt.block_on(async {
            for i in 0..CALLS {
                let handle = pool.handle();
                let call = rt.spawn(async move { handle.call(square, i).await.unwrap() });
                assert_eq!(call.await.unwrap(), square(i));
            }
        });
        rows[6].1.push(start.elapsed() / CALLS as u32);

        let start = Instant::now();
        let out = pool.map_call(square, 0..ITEMS);
        assert!(out
            .into_iter()
            .zip(0..ITEMS)
            .all(|(r, i)| r.unwrap() == square(i)));
        rows[7].1.push(start.elapsed());
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
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "latency ratio cluster/floor: {:.2}x, cluster/js floor: {:.2}x (target <= 1.3x)",
        ratio(medians[0], medians[1]),
        ratio(medians[0], medians[2]),
    );
    println!(
        "throughput ratio cluster/floor: {:.2}x, cluster/js floor: {:.2}x (target >= 0.8x)",
        ratio(medians[4], medians[3]),
        ratio(medians[5], medians[3]),
    );
    run.shutdown();
    drop(children);
    let _ = std::fs::remove_dir_all(&store);
}

/// The JetStream floor: a work-queue stream and a durable pull consumer
/// of its own, answered by a task of this process.
struct JetStreamFloor {
    js: async_nats::jetstream::Context,
    inbox: String,
    replies: std::sync::Arc<Replies>,
    next: std::sync::atomic::AtomicU64,
}

/// Replies by request id, for whoever waits for them.
type Replies = std::sync::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<u64>>>;

impl JetStreamFloor {
    async fn start(url: &str) -> JetStreamFloor {
        use async_nats::jetstream::{self, consumer, stream};
        let nats = async_nats::connect(url).await.unwrap();
        let js = jetstream::new(nats.clone());
        let jobs = js
            .get_or_create_stream(stream::Config {
                name: "FLOOR".to_string(),
                subjects: vec!["floor.jobs".to_string()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        let responder: consumer::PullConsumer = jobs
            .get_or_create_consumer(
                "FLOOR_WORKERS",
                consumer::pull::Config {
                    durable_name: Some("FLOOR_WORKERS".to_string()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut messages = responder
            .stream()
            .max_messages_per_batch(16)
            .messages()
            .await
            .unwrap();
        let answering = nats.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let x = u64::from_le_bytes(message.payload[..8].try_into().unwrap());
                let to = message.headers.as_ref().unwrap().get("Reply-To").unwrap();
                let _ = answering
                    .publish(to.to_string(), square(x).to_le_bytes().to_vec().into())
                    .await;
                let _ = message.ack().await;
            }
        });
        let inbox = nats.new_inbox();
        let mut sub = nats.subscribe(format!("{inbox}.*")).await.unwrap();
        let replies = std::sync::Arc::new(Replies::default());
        let waiting = replies.clone();
        tokio::spawn(async move {
            while let Some(message) = sub.next().await {
                let id: u64 = message.subject.rsplit('.').next().unwrap().parse().unwrap();
                let value = u64::from_le_bytes(message.payload[..8].try_into().unwrap());
                if let Some(tx) = waiting.lock().unwrap().remove(&id) {
                    let _ = tx.send(value);
                }
            }
        });
        JetStreamFloor {
            js,
            inbox,
            replies,
            next: Default::default(),
        }
    }

    /// Publishes `x`, waits for the server's ack and the reply.
    async fn call(&self, x: u64) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.replies.lock().unwrap().insert(id, tx);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Reply-To", format!("{}.{id}", self.inbox).as_str());
        headers.insert("Nats-Msg-Id", format!("{}.{id}", self.inbox).as_str());
        let ack = self
            .js
            .publish_with_headers("floor.jobs", headers, x.to_le_bytes().to_vec().into())
            .await
            .unwrap();
        let (ack, value) = futures::join!(std::future::IntoFuture::into_future(ack), rx);
        ack.unwrap();
        value.unwrap()
    }
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
