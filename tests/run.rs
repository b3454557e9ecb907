//! `Run` scopes: building, spawning, `map`, handles, borrowed and nested
//! backends, and `ThreadMode::Gil`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::task::{Context, Poll};

use unirun::trace::Reason;
use unirun::{Error, Executor, Flavor, JoinHandle, Run, RuntimeConfig, ThreadMode};

fn gil() -> RuntimeConfig {
    RuntimeConfig::default().thread_mode(ThreadMode::Gil)
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Returns `Pending` once, waking itself: a point where a task lets others run.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

#[test]
fn name_and_max_workers_reach_the_threads() {
    let run = Run::builder()
        .flavor(Flavor::Threads)
        .name("ingest")
        .max_workers(2)
        .max_blocking(3)
        .build()
        .unwrap();
    assert!(run.handle().num_workers() <= 2);
    assert_eq!(run.handle().max_blocking_threads(), 3);
    assert_eq!(run.handle().name(), "ingest");
    let worker = run.spawn(async { thread_name() }).join().unwrap();
    let blocking = run.spawn_blocking(thread_name).join().unwrap();
    assert!(
        worker == "ingest-0" || worker == "ingest-1",
        "worker thread {worker}"
    );
    assert!(blocking.starts_with("ingest-blocking-"), "{blocking}");
    assert_eq!(run.trace().name(), Some("ingest"));
}

#[test]
fn max_workers_leaves_the_blocking_lane_alone() {
    let default = Run::builder().flavor(Flavor::Threads).build().unwrap();
    let capped = Run::builder()
        .flavor(Flavor::Threads)
        .max_workers(1)
        .build()
        .unwrap();
    assert_eq!(capped.handle().num_workers(), 1);
    assert_eq!(
        capped.handle().max_blocking_threads(),
        default.handle().max_blocking_threads()
    );
    let err = Run::builder().max_blocking(0).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid max_blocking=0: expected an integer >= 1"
    );
}

#[test]
fn spawn_spawn_blocking_and_block_on_work_together() {
    let run = Run::new(Flavor::Auto).unwrap();
    let a = run.spawn(async { 20 });
    let b = run.spawn_blocking(|| 22);
    assert_eq!(
        run.block_on(async { a.await.unwrap() + b.await.unwrap() }),
        42
    );
    let handle = run.handle();
    let nested = run.spawn(async move { handle.spawn(async { 5 }).await.unwrap() * 2 });
    assert_eq!(nested.join().unwrap(), 10);
}

#[test]
fn max_workers_zero_fails_at_build_naming_max_workers() {
    let err = Run::builder().max_workers(0).build().unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidSetting {
            setting: "max_workers",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "invalid max_workers=0: expected an integer >= 1"
    );
    let err = Run::builder()
        .config(RuntimeConfig::default().max_workers(0))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_workers=0"), "{err}");
}

#[test]
fn a_flavor_that_is_not_compiled_in_names_its_feature() {
    for (flavor, feature) in [
        (Flavor::Processes, "process-backend"),
        (Flavor::Smol, "smol-backend"),
        (Flavor::Tokio, "tokio-backend"),
    ] {
        if flavor.is_available() {
            continue;
        }
        let err = Run::new(flavor).unwrap_err();
        assert!(
            matches!(err, Error::BackendUnavailable { feature: f, .. } if f == feature),
            "{err:?}"
        );
        assert!(err.to_string().contains(feature), "{err}");
    }
}

#[test]
fn map_returns_results_in_input_order() {
    let run = Run::builder().max_workers(4).build().unwrap();
    // Later items finish first: the order must come from the input.
    let out = run.map(0..64u64, |i| {
        for _ in 0..(64 - i) * 50 {
            std::hint::spin_loop();
        }
        i * 2
    });
    assert_eq!(out, (0..64u64).map(|i| i * 2).collect::<Vec<_>>());
    assert!(run.map(Vec::<u8>::new(), |x| x).is_empty());
    let words = run.map(vec!["a".to_string(), "bb".into()], |s| s.len());
    assert_eq!(words, [1, 2]);
}

#[test]
fn map_reraises_the_first_panic_after_the_other_items_finished() {
    let run = Run::builder().max_workers(2).build().unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = finished.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run.map(0..20, move |i| {
            if i == 3 || i == 11 {
                panic!("item {i} failed");
            }
            counter.fetch_add(1, Ordering::SeqCst);
            i
        })
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "item 3 failed");
    assert_eq!(finished.load(Ordering::SeqCst), 18);
    // The scope keeps serving.
    assert_eq!(run.map([1, 2], |x| x + 1), [2, 3]);
}

#[test]
fn a_provided_executor_is_borrowed_and_never_shut_down() {
    let owner = Run::builder().name("provider").build().unwrap();
    let run = Run::builder().executor(owner.handle()).build().unwrap();
    assert_eq!(run.trace().reason(), &Reason::Provided);
    assert!(run.trace().to_string().contains("provided"));
    assert_eq!(run.trace().workers(), None);
    assert!(run
        .spawn_blocking(thread_name)
        .join()
        .unwrap()
        .starts_with("provider-blocking-"));
    run.shutdown();
    assert_eq!(owner.spawn(async { "alive" }).join().unwrap(), "alive");
}

#[test]
fn the_shared_flavor_borrows_the_shared_pool() {
    let run = Run::new(Flavor::Shared).unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Shared);
    assert_eq!(
        run.trace().reason(),
        &Reason::Explicit {
            flavor: Flavor::Shared
        }
    );
    assert_eq!(run.handle().name(), unirun::get_executor().name());
    assert!(run.trace().workers().is_some());
    let pending = run.spawn(std::future::pending::<()>());
    run.shutdown_now();
    assert!(pending.join().unwrap_err().is_cancelled());
    // The shared pool itself is untouched.
    assert_eq!(unirun::spawn(async { 1 }).join().unwrap(), 1);
}

#[test]
fn a_nested_scope_reuses_its_parents_pool_and_owns_only_its_tasks() {
    let parent = Run::builder().name("parent").build().unwrap();
    let (_gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate_rx = Arc::new(Mutex::new(gate_rx));
    // A task of the parent that stays busy while the child comes and goes.
    let gate = gate_rx.clone();
    let parents_task = parent.spawn_blocking(move || gate.lock().unwrap().recv().is_err());

    let (reason, child_thread) = parent.block_on(async {
        let child = Run::new(Flavor::Auto).unwrap();
        let reason = child.trace().reason().clone();
        let thread = child.spawn_blocking(thread_name).join().unwrap();
        // Waits for the child's tasks only, and leaves the pool running.
        child.shutdown();
        (reason, thread)
    });
    assert_eq!(reason, Reason::ReusedParent);
    assert!(
        child_thread.starts_with("parent-blocking-"),
        "{child_thread}"
    );
    assert!(!parents_task.is_finished());

    // Inside a task of the parent too.
    let from_task = parent
        .spawn(async {
            let child = Run::new(Flavor::Threads).unwrap();
            let trace = child.trace().clone();
            let name = child.handle().name().to_string();
            drop(child);
            (trace.reason().clone(), trace.to_string(), name)
        })
        .join()
        .unwrap();
    assert_eq!(from_task.0, Reason::ReusedParent);
    assert!(from_task.1.contains("reused parent"), "{}", from_task.1);
    assert_eq!(from_task.2, "parent");

    drop(_gate_tx);
    assert!(parents_task.join().unwrap());
}

#[test]
fn a_nested_scope_with_its_own_name_or_cap_gets_its_own_pool() {
    let parent = Run::builder().name("outer").build().unwrap();
    let names = parent.block_on(async {
        let named = Run::builder().name("inner").build().unwrap();
        let capped = Run::builder().max_workers(1).build().unwrap();
        [
            named.handle().name().to_string(),
            format!("{:?}", capped.trace().reason()),
        ]
    });
    assert_eq!(names[0], "inner");
    assert!(!names[1].contains("ReusedParent"), "{}", names[1]);
}

#[test]
fn handles_spawn_into_the_scope_and_cancel_after_it_shut_down() {
    let run = Run::builder().name("handles").build().unwrap();
    let handle = run.handle();
    let (tx, rx) = mpsc::channel::<()>();
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    handle
        .spawn_blocking(move || {
            rx.recv().unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .detach();
    let sender = std::thread::spawn(move || tx.send(()).unwrap());
    // Shutdown waits for the task spawned through the handle.
    run.shutdown();
    assert_eq!(done.load(Ordering::SeqCst), 1);
    sender.join().unwrap();
    assert!(handle.spawn(async { 1 }).join().unwrap_err().is_cancelled());
    let ex: &dyn Executor = &handle;
    assert!(ex.spawn_blocking(|| 1).join().unwrap_err().is_cancelled());
}

#[test]
fn run_is_send_and_can_move_to_another_thread() {
    let run = Run::builder().name("mover").build().unwrap();
    let task = run.spawn(async { 3 });
    let joined = std::thread::spawn(move || {
        let out = run.block_on(task).unwrap();
        run.shutdown();
        out
    });
    assert_eq!(joined.join().unwrap(), 3);
}

#[test]
fn on_decision_sees_the_trace_and_a_panicking_one_does_not_break_build() {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let run = Run::builder()
        .name("decided")
        .on_decision(move |trace| *sink.lock().unwrap() = Some(trace.clone()))
        .build()
        .unwrap();
    assert_eq!(seen.lock().unwrap().as_ref(), Some(run.trace()));

    let run = Run::builder()
        .on_decision(|_| panic!("listener bug"))
        .build()
        .unwrap();
    assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
}

// --- ThreadMode::Gil ------------------------------------------------------

/// Counts how many of a scope's tasks are inside their code at once.
#[derive(Default, Clone)]
struct Inside {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Inside {
    fn visit(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        std::thread::yield_now();
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[test]
fn a_gil_scope_never_runs_two_of_its_tasks_at_once() {
    let run = Run::builder()
        .name("gil")
        .max_workers(4)
        .config(gil())
        .build()
        .unwrap();
    assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
    let inside = Inside::default();
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    for _ in 0..40 {
        let inside = inside.clone();
        handles.push(run.spawn(async move {
            for _ in 0..10 {
                inside.visit();
                yield_now().await;
            }
        }));
    }
    for _ in 0..20 {
        let inside = inside.clone();
        handles.push(run.spawn_blocking(move || {
            for _ in 0..10 {
                inside.visit();
            }
        }));
    }
    // Through the Executor trait and the handle too.
    let handle = run.handle();
    let ex: &dyn Executor = &handle;
    for _ in 0..10 {
        let (a, b) = (inside.clone(), inside.clone());
        handles.push(ex.spawn(async move {
            a.visit();
            yield_now().await;
            a.visit();
        }));
        handles.push(ex.spawn_blocking(move || b.visit()));
    }
    let blocker = inside.clone();
    run.block_on(async move {
        for handle in handles {
            blocker.visit();
            handle.await.unwrap();
        }
    });
    assert_eq!(inside.max(), 1);
}

#[test]
fn a_nogil_scope_runs_blocking_closures_in_parallel() {
    let run = Run::builder().name("nogil").build().unwrap();
    assert_eq!(run.trace().thread_mode(), ThreadMode::Nogil);
    // Both must be inside at once to pass the barrier.
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            run.spawn_blocking(move || barrier.wait().is_leader())
        })
        .collect();
    let leaders = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&l| l)
        .count();
    assert_eq!(leaders, 1);
}

#[test]
fn allow_threads_lets_the_other_tasks_of_a_gil_scope_in() {
    let run = Run::builder().name("allow").config(gil()).build().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            run.spawn_blocking(move || unirun::allow_threads(|| barrier.wait().is_leader()))
        })
        .collect();
    let leaders: usize = handles
        .into_iter()
        .map(|h| usize::from(h.join().unwrap()))
        .sum();
    assert_eq!(leaders, 1);
    // Outside any scope it just calls the closure.
    assert_eq!(unirun::allow_threads(|| 7), 7);
}

#[test]
fn blocking_waits_inside_a_gil_scope_do_not_deadlock_it() {
    let run = Run::builder()
        .name("gilwait")
        .max_workers(1)
        .config(gil())
        .build()
        .unwrap();
    let handle = run.handle();
    // A task blocks its only worker on a sibling queued behind it.
    let outer = run.spawn(async move {
        let inner = handle.spawn(async { 41 });
        unirun::block_on(inner).unwrap() + 1
    });
    assert_eq!(outer.join().unwrap(), 42);

    // JoinHandle::join in a task, and run.block_on nested in a task.
    let handle = run.handle();
    let joined = run.spawn(async move {
        let sibling = handle.spawn(async { 2 });
        sibling.join().unwrap() * 10
    });
    assert_eq!(run.block_on(joined).unwrap(), 20);

    let wide = Run::builder()
        .name("gilwide")
        .config(gil())
        .build()
        .unwrap();
    let handle = wide.handle();
    // A blocking closure joins a sibling closure and an async task.
    let closure = wide.spawn_blocking(move || {
        let a = handle.spawn_blocking(|| 1);
        let b = handle.spawn(async { 2 });
        a.join().unwrap() + unirun::block_on(b).unwrap()
    });
    assert_eq!(closure.join().unwrap(), 3);
    // map from inside a task of the scope.
    let inner = Arc::new(wide);
    let scope = inner.clone();
    let mapped = inner
        .spawn(async move { scope.map(0..8, |i| i + 1).into_iter().sum::<i32>() })
        .join()
        .unwrap();
    assert_eq!(mapped, 36);
}

#[test]
fn cpu_bound_gil_wants_processes_and_falls_back_to_threads() {
    let run = Run::builder()
        .config(gil().cpu_bound(true))
        .build()
        .unwrap();
    let trace = run.trace();
    assert!(trace.reasons().contains(&Reason::CpuBoundGil), "{trace}");
    if !Flavor::Processes.is_available() {
        assert_eq!(trace.resolved(), Flavor::Threads);
        assert_eq!(trace.fallbacks()[0].from(), Flavor::Processes);
        assert!(trace.to_string().contains("fallback"), "{trace}");
    }
    assert_eq!(run.map(0..3, |i| i * 3), [0, 3, 6]);
}
