//! A batch job watched while it runs: 2,000 items, three in four CPU work
//! (async tasks on the workers) and one in four blocking I/O-like work (on
//! the blocking lane), through one `Run`. The main thread draws a progress
//! line from `Run::metrics()` ten times a second: items done out of the
//! total, the rate, busy workers and blocking threads. At the end it prints
//! the scope's decision trace and its final metrics as JSON.
//!
//! ```text
//! cargo run --release --example monitor
//! UNIRUN_TRACE=1 cargo run --example monitor     # the decision as it is made, too
//! ```
//!
//! Without a terminal (CI, a pipe) the bar is not drawn; a plain status
//! line is printed every half second instead.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use unirun::{Flavor, Run};

const ITEMS: u64 = 2_000;

/// Some arithmetic (tens to hundreds of microseconds), varying by item.
fn crunch(item: u64) -> u64 {
    let rounds = 5_000 + (item % 7) * 2_000;
    (0..rounds).fold(item, |acc, i| {
        std::hint::black_box(acc.rotate_left(5) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    })
}

/// Stands in for a blocking read: waits a couple of milliseconds.
fn fetch(item: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    item
}

fn main() -> Result<(), unirun::Error> {
    let run = Run::builder()
        .flavor(Flavor::Threads)
        .name("monitor")
        .build()?;

    let started = Instant::now();
    let items: Vec<_> = (0..ITEMS)
        .map(|item| {
            if item % 4 == 0 {
                run.spawn_blocking(move || fetch(item))
            } else {
                run.spawn(async move { crunch(item) })
            }
        })
        .collect();

    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::new(ITEMS);
    if tty {
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec:>12} {msg}")
                .expect("a valid template"),
        );
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let mut last_line = Instant::now();
    loop {
        let m = run.metrics();
        // Exact: every item is one of the scope's tasks, and each ended one
        // is counted once, as completed, panicked or cancelled.
        let done = m.completed() + m.panicked() + m.cancelled();
        let status = format!(
            "busy workers {}/{}, blocking threads {} ({} idle), queued {}",
            m.busy_workers(),
            m.workers(),
            m.blocking_threads(),
            m.blocking_idle(),
            m.queued() + m.blocking_queued(),
        );
        bar.set_position(done);
        bar.set_message(status.clone());
        if !tty && (last_line.elapsed() >= Duration::from_millis(500) || done == ITEMS) {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!("{done}/{ITEMS} items, {rate:.0}/s, {status}");
            last_line = Instant::now();
        }
        if done == ITEMS {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_with_message(format!("done in {:.2?}", started.elapsed()));

    let mut checksum = 0u64;
    for item in items {
        checksum ^= item.join().expect("no item fails");
    }
    let metrics = run.metrics();
    assert_eq!(metrics.spawned(), ITEMS);
    assert_eq!(metrics.live(), 0);
    println!("checksum {checksum:#x}");
    println!("{}", run.trace());
    println!(
        "{}",
        serde_json::to_string(&metrics).expect("metrics serialize")
    );
    run.shutdown();
    Ok(())
}
