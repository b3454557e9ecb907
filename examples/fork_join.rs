//! Fork-join on unirun's workers, next to async tasks: `cargo run --release
//! --example fork_join`. The three shapes of the README's "join / scope /
//! map" section, checked.

fn fib(n: u64) -> u64 {
    if n < 20 {
        return (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0;
    }
    // Offered to an idle worker; taken back if none is.
    let (a, b) = unirun::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

fn main() {
    // join: two closures, possibly in parallel, both borrowing freely.
    assert_eq!(fib(40), 102_334_155);

    // scope: spawned closures may borrow from the stack; it returns when
    // all of them finished.
    let data: Vec<u64> = (1..=1_000).collect();
    let mut sums = [0u64; 4];
    unirun::scope(|s| {
        for (sum, chunk) in sums.iter_mut().zip(data.chunks(250)) {
            s.spawn(move |_| *sum = chunk.iter().sum());
        }
    });
    assert_eq!(sums.iter().sum::<u64>(), 500_500);

    // map: results in input order; Run::map takes the workers in a
    // cpu_bound scope and the blocking lane otherwise (its trace says which).
    let squares = unirun::par_map(&data, |&x| x * x);
    assert_eq!(squares[999], 1_000_000);
    let run = unirun::Run::builder()
        .config(unirun::RuntimeConfig::default().cpu_bound(true))
        .build()
        .expect("a scope");
    let lengths = run.map(["fork", "join", "map"], |s| s.len());
    assert_eq!(lengths, [4, 4, 3]);
    println!("{}", run.trace()); // ...; map on the workers (cpu_bound=true)
    run.shutdown();
}
