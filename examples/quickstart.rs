//! The README's first command: `cargo run --example quickstart`.
//!
//! Spawns async tasks on unirun's default thread pool, runs blocking work on
//! its blocking lane with `to_thread`, and waits for both with `block_on`,
//! printing what ran where; then opens a `Run` scope of its own and prints
//! the scheduler's reasons for it.

use std::time::Instant;

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string()
}

fn main() {
    let started = Instant::now();
    let pool = unirun::get_executor();
    println!(
        "unirun default executor: {} worker threads (from this machine's CPU budget)",
        pool.num_workers()
    );

    // 1. Async tasks: many small ones, awaited in order with `gather`.
    let squares = (1..=8u64).map(|i| unirun::spawn(async move { (i * i, thread_name()) }));
    let squares = unirun::block_on(unirun::gather(squares));
    let mut workers: Vec<String> = Vec::new();
    let mut total = 0;
    for result in squares {
        let (square, worker) = result.expect("task panicked");
        total += square;
        if !workers.contains(&worker) {
            workers.push(worker);
        }
    }
    println!("spawn:      8 async tasks summed their squares to {total} on {workers:?}");

    // 2. Blocking work goes to the elastic blocking lane, not the workers.
    let listing = unirun::to_thread(|| {
        let entries = std::fs::read_dir(".").map(|dir| dir.count()).unwrap_or(0);
        (entries, thread_name())
    });
    let (entries, lane_thread) = unirun::block_on(listing).expect("blocking closure panicked");
    println!("to_thread:  listed {entries} entries of the current directory on {lane_thread:?}");

    // 3. A task that spawns and awaits more tasks.
    let fib = unirun::spawn(fib(20));
    println!(
        "block_on:   fib(20) computed by nested tasks = {}",
        unirun::block_on(fib).unwrap()
    );

    // 4. Panics come back as errors, and the pool keeps serving. The panic
    //    below is deliberate: Rust's panic hook prints it on stderr first.
    println!("panic:      (a deliberate panic follows, to show it coming back as an error)");
    let err = unirun::block_on(unirun::spawn(async { panic!("deliberate panic") })).unwrap_err();
    println!("panic:      {err}");
    let after = unirun::block_on(unirun::spawn(async { "still serving" })).unwrap();
    println!("after:      {after}");

    // 5. A scope of its own: its tasks, its threads, its reasons.
    let run = unirun::Run::builder()
        .name("ingest")
        .max_workers(2)
        .build()
        .expect("a scope with valid settings");
    let lines = run.map(["a,b", "c", "d,e,f"], |line| line.split(',').count());
    let worker = run.block_on(run.spawn(async { thread_name() })).unwrap();
    println!("run:        fields per line {lines:?}, a task ran on {worker:?}");
    println!("trace:      {}", run.trace());
    run.shutdown();

    println!("done in {:?}", started.elapsed());
}

fn fib(n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < 12 {
            return fib_seq(n);
        }
        let left = unirun::spawn(fib(n - 1));
        let right = fib(n - 2).await;
        left.await.unwrap() + right
    })
}

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}
