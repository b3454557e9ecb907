//! Crash isolation: run a fragile parser over a batch of inputs, each in a
//! forked child with a timeout. Inputs that make it abort, segfault, panic
//! or hang are reported with what happened; the batch always finishes.
//!
//! ```text
//! cargo run --example isolate --features process-backend
//! ```

use std::time::Duration;

use unirun::process::ProcessOptions;

/// A parser with bugs: it trusts markers in its input.
fn parse(input: &str) -> Vec<u32> {
    if input.contains("<abort>") {
        std::process::abort();
    }
    if input.contains("<segv>") {
        segfault();
    }
    if input.contains("<hang>") {
        loop {
            std::thread::park();
        }
    }
    input
        .split(',')
        .map(|field| field.trim().parse().expect("a number"))
        .collect()
}

/// Dies of SIGSEGV, as a bad pointer in C code would make it.
fn segfault() -> ! {
    // Rust's stack-overflow handler would ignore a segfault sent with
    // `raise`; restore the default action first.
    // SAFETY: SIG_DFL is a valid disposition for SIGSEGV; raising a signal
    // at ourselves has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    unreachable!("SIGSEGV terminates the process")
}

fn main() {
    let batch = [
        "1, 2, 3",
        "4, <abort>, 6",
        "7, 8",
        "<segv>",
        "9, ten",
        "<hang>",
        "11, 12, 13, 14",
    ];
    let options = ProcessOptions::default().timeout(Duration::from_secs(2));
    let handles: Vec<_> = batch
        .iter()
        .map(|input| {
            let input = input.to_string();
            unirun::to_process_with(options, move || parse(&input))
        })
        .collect();
    let mut crashed = 0;
    for (input, handle) in batch.iter().zip(handles) {
        match handle.join() {
            Ok(numbers) => println!("ok       {input:?} -> {numbers:?}"),
            Err(err) if err.is_crash() => {
                crashed += 1;
                let name = err.signal_name().unwrap_or("?");
                println!("crashed  {input:?}: {name} ({err})");
            }
            Err(err) if err.is_timeout() => println!("timeout  {input:?}: {err}"),
            Err(err) => println!("failed   {input:?}: {err}"),
        }
    }
    println!(
        "{} inputs, {crashed} crashed, the parent is fine",
        batch.len()
    );
}
