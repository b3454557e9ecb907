//! The cluster backend against its floors on the same server: sequential
//! `Run::call` latency and `Run::map_call` throughput, next to
//!
//! - raw async-nats request/reply: responders in this process, no
//!   JetStream, no process pool (the issue's floor);
//! - JetStream floors of the cluster's own shape: publish to a
//!   work-queue stream with a message id, a responder in this process
//!   pulling from a durable consumer, replying to a header's inbox and
//!   acknowledging; no process pool, no second process. Four of them:
//!   file or memory storage, the publish's ack awaited (as the cluster
//!   does, concurrently with the reply) or not asked for (a core publish):
//!   what the engine costs before unirun adds anything;
//! - the process pool a worker runs each job in, alone (two processes,
//!   each call awaited on a tokio thread as a worker does): what a worker
//!   adds to the wire.
//!
//! The cluster runs twice: on a file-backed stream (the default) and on a
//! memory-backed one ([`Storage::Memory`]), two workers each. Its map
//! packs the calls of `square` (a short function, as the sequential calls
//! before it showed) 32 to a message, so it can pass the per-message
//! floors; its sequential calls are one message each, so their latency is
//! a JetStream floor's plus a worker's pool round trip (the "pool,
//! awaited" row).
//!
//! A hand-written harness: the binary is also its own workers
//! (`serve_if_worker` first). The server and the workers die with the
//! bench (`PR_SET_PDEATHSIG`, Linux) however it ends.
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
use unirun::cluster::{self, ClusterOptions, Storage};
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

/// Set in the workers of the memory-backed stream: the server's URL.
const MEMORY_WORKER: &str = "CLUSTER_BENCH_MEMORY_WORKER";
/// The memory-backed stream.
const MEMORY_STREAM: &str = "UNIRUN_MEMORY";

fn main() {
    cluster::serve_if_worker();
    if let Ok(url) = std::env::var(MEMORY_WORKER) {
        let err = cluster::serve(ClusterOptions::new(url).stream(MEMORY_STREAM));
        panic!("memory worker: {err:?}");
    }
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
    let mut children = Children(vec![die_with_this_thread(
        Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
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

    let scope = |options: ClusterOptions| {
        Run::builder()
            .flavor(Flavor::Cluster)
            .cluster(options)
            .build()
            .expect("cluster scope")
    };
    let run = scope(ClusterOptions::new(&url));
    let memory = scope(
        ClusterOptions::new(&url)
            .stream(MEMORY_STREAM)
            .storage(Storage::Memory),
    );
    for env in [
        cluster::WORKER_ENV,
        cluster::WORKER_ENV,
        MEMORY_WORKER,
        MEMORY_WORKER,
    ] {
        let value = if env == MEMORY_WORKER {
            url.as_str()
        } else {
            "1"
        };
        children.0.push(
            die_with_this_thread(
                Command::new(std::env::current_exe().unwrap())
                    .env(env, value)
                    .env(cluster::URL_ENV, &url)
                    .env("UNIRUN_MAX_WORKERS", "2"),
            )
            .spawn()
            .expect("start a worker"),
        );
    }
    assert_eq!(run.call(square, 3).join().unwrap(), 9, "workers up");
    assert_eq!(memory.call(square, 3).join().unwrap(), 9, "workers up");

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
    let js_floors = [
        (Storage::File, true),
        (Storage::Memory, true),
        (Storage::File, false),
        (Storage::Memory, false),
    ]
    .map(|(storage, acked)| rt.block_on(JetStreamFloor::start(&url, storage, acked)));
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

    // Rows, each a median of `samples` runs: latencies per call, then
    // map times of ITEMS.
    let names = [
        "call latency: cluster",
        "call latency: cluster, memory",
        "call latency: floor",
        "call latency: js file acked",
        "call latency: js memory acked",
        "call latency: js file unacked",
        "call latency: js memory unacked",
        "call latency: pool, awaited",
        "map throughput: cluster",
        "map throughput: cluster, memory",
        "map throughput: floor",
        "map throughput: js file acked",
        "map throughput: js memory acked",
        "map throughput: js file unacked",
        "map throughput: js memory unacked",
        "map throughput: pool",
    ];
    let mut rows: Vec<(&str, Vec<Duration>)> = names.iter().map(|n| (*n, Vec::new())).collect();
    // A process pool as wide as one worker's.
    let pool = Run::builder()
        .flavor(Flavor::Processes)
        .max_workers(2)
        .build()
        .expect("process scope");
    let sequential = |run: &Run| {
        let start = Instant::now();
        for i in 0..CALLS {
            assert_eq!(run.call(square, i).join().unwrap(), square(i));
        }
        start.elapsed() / CALLS as u32
    };
    let mapped = |run: &Run| {
        let start = Instant::now();
        let out = run.map_call(square, 0..ITEMS);
        assert!(out
            .into_iter()
            .zip(0..ITEMS)
            .all(|(r, i)| r.unwrap() == square(i)));
        start.elapsed()
    };
    for _ in 0..samples {
        let mut row = 0;
        let mut push = |d: Duration| {
            rows[row].1.push(d);
            row += 1;
        };
        push(sequential(&run));
        push(sequential(&memory));

        let start = Instant::now();
        rt.block_on(async {
            for i in 0..CALLS {
                assert_eq!(request(i).await, square(i));
            }
        });
        push(start.elapsed() / CALLS as u32);

        for floor in &js_floors {
            let start = Instant::now();
            rt.block_on(async {
                for i in 0..CALLS {
                    assert_eq!(floor.call(i).await, square(i));
                }
            });
            push(start.elapsed() / CALLS as u32);
        }

        // A worker awaits its pool's calls on its tokio thread.
        let start = Instant::now();
        rt.block_on(async {
            for i in 0..CALLS {
                let handle = pool.handle();
                let call = rt.spawn(async move { handle.call(square, i).await.unwrap() });
                assert_eq!(call.await.unwrap(), square(i));
            }
        });
        push(start.elapsed() / CALLS as u32);

        push(mapped(&run));
        push(mapped(&memory));

        let start = Instant::now();
        let out: Vec<u64> = rt.block_on(
            futures::stream::iter(0..ITEMS)
                .map(request)
                .buffered(FLOOR_IN_FLIGHT)
                .collect(),
        );
        assert!(out.into_iter().zip(0..ITEMS).all(|(r, i)| r == square(i)));
        push(start.elapsed());

        for floor in &js_floors {
            let start = Instant::now();
            let out: Vec<u64> = rt.block_on(
                futures::stream::iter(0..ITEMS)
                    .map(|i| floor.call(i))
                    .buffered(FLOOR_IN_FLIGHT)
                    .collect(),
            );
            assert!(out.into_iter().zip(0..ITEMS).all(|(r, i)| r == square(i)));
            push(start.elapsed());
        }

        push(mapped(&pool));
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
                "{name:34} median {:>9.0} items/s (range {:.0}..{:.0})",
                rate(m),
                rate(hi),
                rate(lo)
            );
        } else {
            println!("{name:34} median {m:>9.2?} per call (range {lo:.2?}..{hi:.2?})");
        }
        medians.push(m);
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    // Latency: cluster over each floor (lower is better); throughput: the
    // floor's time over the cluster's (higher is better).
    println!(
        "latency ratio cluster/floor: {:.2}x, cluster/js file acked: {:.2}x, \
         memory cluster/floor: {:.2}x, memory cluster/js memory acked: {:.2}x (target <= 1.3x)",
        ratio(medians[0], medians[2]),
        ratio(medians[0], medians[3]),
        ratio(medians[1], medians[2]),
        ratio(medians[1], medians[4]),
    );
    println!(
        "latency of the engine alone: js file acked/floor {:.2}x, js memory acked/floor {:.2}x, \
         js memory unacked/floor {:.2}x",
        ratio(medians[3], medians[2]),
        ratio(medians[4], medians[2]),
        ratio(medians[6], medians[2]),
    );
    println!(
        "throughput ratio cluster/floor: {:.2}x, cluster/js file acked: {:.2}x, \
         memory cluster/floor: {:.2}x, memory cluster/js memory acked: {:.2}x (target >= 0.8x)",
        ratio(medians[10], medians[8]),
        ratio(medians[11], medians[8]),
        ratio(medians[10], medians[9]),
        ratio(medians[12], medians[9]),
    );
    println!(
        "throughput of the engine alone: js file acked/floor {:.2}x, js memory acked/floor \
         {:.2}x, js memory unacked/floor {:.2}x",
        ratio(medians[10], medians[11]),
        ratio(medians[10], medians[12]),
        ratio(medians[10], medians[14]),
    );
    run.shutdown();
    memory.shutdown();
    drop(children);
    let _ = std::fs::remove_dir_all(&store);
}

/// A JetStream floor: a work-queue stream and a durable pull consumer
/// of its own, answered by a task of this process.
struct JetStreamFloor {
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    subject: String,
    /// Whether a publish asks for the server's ack and awaits it
    /// (concurrently with the reply, as the cluster does).
    acked: bool,
    inbox: String,
    replies: std::sync::Arc<Replies>,
    next: std::sync::atomic::AtomicU64,
}

/// Replies by request id, for whoever waits for them.
type Replies = std::sync::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<u64>>>;

impl JetStreamFloor {
    async fn start(url: &str, storage: Storage, acked: bool) -> JetStreamFloor {
        use async_nats::jetstream::{self, consumer, stream};
        let name = format!(
            "FLOOR_{}_{}",
            storage.to_string().to_uppercase(),
            if acked { "ACKED" } else { "UNACKED" }
        );
        let subject = format!("floor.jobs.{name}");
        let nats = async_nats::connect(url).await.unwrap();
        let js = jetstream::new(nats.clone());
        let jobs = js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: match storage {
                    Storage::Memory => stream::StorageType::Memory,
                    _ => stream::StorageType::File,
                },
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .unwrap();
        let workers = format!("{name}_WORKERS");
        let responder: consumer::PullConsumer = jobs
            .get_or_create_consumer(
                &workers,
                consumer::pull::Config {
                    durable_name: Some(workers.clone()),
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
            nats,
            js,
            subject,
            acked,
            inbox,
            replies,
            next: Default::default(),
        }
    }

    /// Publishes `x` and waits for the reply (and the server's ack, if
    /// asked for).
    async fn call(&self, x: u64) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.replies.lock().unwrap().insert(id, tx);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Reply-To", format!("{}.{id}", self.inbox).as_str());
        headers.insert("Nats-Msg-Id", format!("{}.{id}", self.inbox).as_str());
        let payload = x.to_le_bytes().to_vec().into();
        if !self.acked {
            self.nats
                .publish_with_headers(self.subject.clone(), headers, payload)
                .await
                .unwrap();
            return rx.await.unwrap();
        }
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, payload)
            .await
            .unwrap();
        let (ack, value) = futures::join!(std::future::IntoFuture::into_future(ack), rx);
        ack.unwrap();
        value.unwrap()
    }
}

/// `command`, whose child dies (`SIGKILL`) when this thread ends, so
/// with the bench however it ends (Linux's `PR_SET_PDEATHSIG`; elsewhere
/// only `Children`'s drop kills them).
fn die_with_this_thread(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: `prctl`, `getppid` and an `io::Error` from a number are
        // async-signal-safe; nothing here allocates or locks.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    command
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
