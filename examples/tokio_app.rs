//! A small tokio program on unirun: blocking work through
//! `unirun::compat::tokio::task::spawn_blocking` (a one-line `use` change
//! from `tokio::task`), and a `Run` scope with `Flavor::Tokio` that borrows
//! the program's own runtime. Prints every scheduling decision.
//!
//! ```text
//! cargo run --example tokio_app --features tokio-backend
//! UNIRUN_COMPAT_MODE=passthrough cargo run --example tokio_app --features tokio-backend
//! ```

// Was: use tokio::task;
use unirun::compat::tokio::task;
use unirun::{Flavor, Run};

/// Stands in for a blocking call (file I/O, a C library, a hash).
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _log = unirun::observe_decisions();

    // Blocking work, tokio-style; in managed mode it runs on unirun's lane.
    let blocking = task::spawn_blocking(|| {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        (checksum(b"hello unirun"), name)
    });
    let (sum, thread) = blocking.await?;
    println!("checksum {sum:016x} computed on thread {thread}");

    // Async tasks stay on this tokio runtime.
    let handle = task::spawn(async {
        tokio::task::yield_now().await;
        "async on tokio"
    });
    println!("{}", handle.await?);

    // A scope on the ambient runtime: borrowed, never shut down by unirun.
    let run = Run::builder().flavor(Flavor::Tokio).name("app").build()?;
    println!("decision: {}", run.trace());
    let parts: Vec<_> = (0..4u64)
        .map(|i| run.spawn_blocking(move || checksum(&i.to_le_bytes())))
        .collect();
    for part in parts {
        println!("part {:016x}", part.await?);
    }
    // Dropping a scope inside async code never blocks this worker.
    drop(run);

    // Auto inside a tokio runtime resolves to it too.
    let auto = Run::builder().build()?;
    println!(
        "auto resolved to {} ({})",
        auto.trace().resolved(),
        auto.trace()
    );
    Ok(())
}
