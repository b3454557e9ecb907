//! A join on a worker allocates nothing: a counting global allocator
//! (counting per thread, so other threads' allocations do not blur it)
//! watches a worker fork thousands of joins. In its own test binary
//! because it replaces the global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

struct Counting;

thread_local! {
    /// Allocations made by this thread so far (a const-initialized `Cell`:
    /// reading it never allocates).
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a plain
// thread-local cell that needs no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = unirun::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

#[test]
fn a_join_on_a_worker_allocates_nothing() {
    let run = unirun::Run::builder()
        .flavor(unirun::Flavor::Threads)
        .max_workers(1)
        .build()
        .unwrap();
    let (made, value) = run
        .spawn(async {
            // Warm up whatever is made once per thread.
            black_box(unirun::join(|| 1, || 2));
            let before = allocs();
            let mut sum = 0;
            for i in 0..10_000u64 {
                let (a, b) = unirun::join(|| black_box(i), || black_box(1));
                sum += a + b;
            }
            // Nested, 20 deep: 10,945 more joins.
            sum += fib(20);
            (allocs() - before, sum)
        })
        .join()
        .unwrap();
    assert_eq!(value, (0..10_000u64).sum::<u64>() + 10_000 + 6_765);
    assert_eq!(made, 0, "allocations during 20,945 joins on a worker");
    assert!(run.metrics().joins() >= 20_945);
    run.shutdown();
}
