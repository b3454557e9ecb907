//! Hydrating models: `cargo run --example hydrate`.
//!
//! The workflow unirun's Python seed was written for, in Rust: load a batch
//! of "models" (slow, I/O-bound) with `to_thread` under `gather`, then
//! enrich each (CPU work). First through the top-level helpers on the shared
//! default executor, then inside a `Run` scope configured for I/O-bound work
//! in `ThreadMode::Gil`, where the tasks run serialized and the loads
//! release the scope's lock around their I/O with `allow_threads`. Each part
//! prints the scheduler's decision trace: what ran where, and why.

use std::time::{Duration, Instant};

use unirun::{Flavor, Run, RuntimeConfig, ThreadMode};

#[derive(Debug, Clone)]
struct Model {
    id: u32,
    name: String,
    weights: Vec<u32>,
}

#[derive(Debug)]
struct Enriched {
    id: u32,
    name: String,
    checksum: u64,
    loaded_on: String,
}

/// Stands in for reading a model from disk or the network: mostly waiting.
/// `allow_threads` lets other tasks of a serialized scope run meanwhile (and
/// is free everywhere else).
fn load_model(id: u32) -> Model {
    unirun::allow_threads(|| std::thread::sleep(Duration::from_millis(20)));
    Model {
        id,
        name: format!("model-{id:02}"),
        weights: (0..50_000)
            .map(|i| i ^ id.wrapping_mul(2_654_435_761))
            .collect(),
    }
}

/// CPU work on a loaded model.
fn enrich(model: Model) -> Enriched {
    let checksum = model.weights.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        (h ^ u64::from(*w)).wrapping_mul(0x0100_0000_01b3)
    });
    Enriched {
        id: model.id,
        name: model.name,
        checksum,
        loaded_on: std::thread::current().name().unwrap_or("?").to_string(),
    }
}

fn report(label: &str, started: Instant, enriched: &[Enriched]) {
    println!(
        "{label}: {} models hydrated in {:?}",
        enriched.len(),
        started.elapsed()
    );
    for e in enriched.iter().take(3) {
        println!(
            "  #{:02} {} checksum={:016x} (enriched on {})",
            e.id, e.name, e.checksum, e.loaded_on
        );
    }
    println!("  ...");
}

fn main() -> Result<(), unirun::Error> {
    let ids: Vec<u32> = (1..=12).collect();

    // 1. Top-level helpers: the shared default executor.
    let started = Instant::now();
    let loads = ids
        .iter()
        .map(|&id| unirun::to_thread(move || load_model(id)));
    let models: Vec<Model> = unirun::block_on(unirun::gather(loads))
        .into_iter()
        .map(|loaded| loaded.expect("a load panicked"))
        .collect();
    let enrichments = models
        .into_iter()
        .map(|model| unirun::spawn(async move { enrich(model) }));
    let enriched: Vec<Enriched> = unirun::block_on(unirun::gather(enrichments))
        .into_iter()
        .map(|e| e.expect("an enrichment panicked"))
        .collect();
    report("helpers", started, &enriched);
    if let Some(trace) = unirun::last_decision() {
        println!("  {trace}");
    }

    // 2. A scope for I/O-bound work, serialized (Gil).
    let started = Instant::now();
    let run = Run::builder()
        .flavor(Flavor::Threads)
        .config(
            RuntimeConfig::default()
                .io_bound(true)
                .thread_mode(ThreadMode::Gil),
        )
        .name("hydrate")
        .build()?;
    let loads = ids
        .iter()
        .map(|&id| run.spawn_blocking(move || load_model(id)));
    let models: Vec<Model> = run
        .block_on(unirun::gather(loads))
        .into_iter()
        .map(|loaded| loaded.expect("a load panicked"))
        .collect();
    let enriched = run.map(models, enrich);
    report("Run(threads, io_bound, gil)", started, &enriched);
    println!("  {}", run.trace());
    run.shutdown();
    Ok(())
}
