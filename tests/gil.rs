//! `ThreadMode::Gil`: scopes nested in opposite orders on two threads, and
//! the operator switch `UNIRUN_THREAD_MODE=gil` never deadlocking a program
//! that runs without it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
#[cfg(unix)]
use std::time::Duration;

use common::watchdog_this_test;
use unirun::{Executor, Flavor, Run, RuntimeConfig, ThreadMode};

fn gil_scope(name: &str) -> Arc<Run> {
    Arc::new(
        Run::builder()
            .flavor(Flavor::Threads)
            .name(name)
            .config(RuntimeConfig::default().thread_mode(ThreadMode::Gil))
            .build()
            .unwrap(),
    )
}

/// Thread X holds r1's gil and enters r2 while thread Y holds r2's and
/// enters r1 (both are inside their outer scope when they try, thanks to
/// the barrier). With gils taken in one global order, both finish.
#[test]
fn two_gil_scopes_nested_in_opposite_orders_do_not_deadlock() {
    unirun_test_support::watchdog("two gil scopes nested in opposite orders (ABBA)", || {
        let (r1, r2) = (gil_scope("abba-one"), gil_scope("abba-two"));
        for round in 0..20 {
            let both_inside = Arc::new(Barrier::new(2));
            let threads: Vec<_> = [(r1.clone(), r2.clone()), (r2.clone(), r1.clone())]
                .into_iter()
                .map(|(outer, inner)| {
                    let both_inside = both_inside.clone();
                    std::thread::spawn(move || {
                        outer.block_on(async {
                            both_inside.wait();
                            inner.block_on(async { round * 2 })
                        })
                    })
                })
                .collect();
            for thread in threads {
                assert_eq!(thread.join().unwrap(), round * 2);
            }
        }
    });
}

// --- the operator switch never turns a working program into a deadlock ----
//
// Each test below re-runs itself in a child process with
// `UNIRUN_THREAD_MODE=gil` in its environment (the shared default is then
// serialized), under the watchdog. The shape is the program: a
// closure blocks in `recv` and only a second closure, started after the
// first provably holds its thread, can send. Holding the gil for a
// closure's run would keep the sender from ever starting.

/// The env var that marks the re-executed child.
const GIL_CHILD: &str = "UNIRUN_TEST_GIL_CHILD";

/// Runs test `name` alone in a child with `UNIRUN_THREAD_MODE=gil` (plus
/// `envs`) and asserts it passed; returns true in the child, which does
/// the work.
fn in_gil_child(name: &str, envs: &[(&str, &str)]) -> bool {
    if std::env::var_os(GIL_CHILD).is_some() {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(GIL_CHILD, "1")
        .env("UNIRUN_THREAD_MODE", "gil")
        .envs(envs.iter().copied())
        .output()
        .expect("re-run the test binary");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "child {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child {name} did not run:\n{stdout}"
    );
    false
}

/// The shared default the helpers use is serialized in this process.
fn assert_default_is_serialized() {
    let _ = unirun::get_executor();
    let trace = unirun::last_decision().expect("the default's decision");
    assert_eq!(trace.thread_mode(), ThreadMode::Gil, "{trace}");
}

/// The program with `spawn` as the way a blocking closure starts:
/// `a` blocks in `recv` (after saying it started), then `b` sends. Returns
/// what `a` received.
fn receiver_then_sender<H>(
    spawn: impl Fn(Box<dyn FnOnce() -> u32 + Send>) -> H,
    join: impl Fn(H) -> u32,
) -> u32 {
    let (tx, rx) = mpsc::channel::<u32>();
    let (started_tx, started) = mpsc::channel::<()>();
    let a = spawn(Box::new(move || {
        started_tx.send(()).unwrap();
        rx.recv().unwrap()
    }));
    // `a` runs (and, if closures held the gil, holds it) before `b` exists.
    started.recv().unwrap();
    let b = spawn(Box::new(move || {
        tx.send(1).unwrap();
        0
    }));
    let got = join(a);
    assert_eq!(join(b), 0);
    got
}

#[test]
fn under_the_gil_switch_compat_thread_receiver_and_sender_both_run() {
    if !in_gil_child(
        "under_the_gil_switch_compat_thread_receiver_and_sender_both_run",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        assert_default_is_serialized();
        let got = receiver_then_sender(unirun::compat::thread::spawn, |h| h.join().unwrap());
        assert_eq!(got, 1);
    });
}

#[test]
fn under_the_gil_switch_to_thread_and_spawn_blocking_receiver_and_sender_both_run() {
    if !in_gil_child(
        "under_the_gil_switch_to_thread_and_spawn_blocking_receiver_and_sender_both_run",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        assert_default_is_serialized();
        let join = |h: unirun::JoinHandle<u32>| h.join().unwrap();
        assert_eq!(receiver_then_sender(unirun::to_thread, join), 1);
        let handle = unirun::get_executor();
        assert_eq!(receiver_then_sender(|f| handle.spawn_blocking(f), join), 1);
        assert_eq!(
            receiver_then_sender(|f| unirun::run_in_executor(None, f), join),
            1
        );
        // Through the `Executor` trait too.
        let ex: &dyn Executor = &handle;
        assert_eq!(receiver_then_sender(|f| ex.spawn_blocking(f), join), 1);
        // A scope of the program's own takes its mode from the switch too.
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
        assert_eq!(receiver_then_sender(|f| run.spawn_blocking(f), join), 1);
        let out = run.map(0..2u32, |i| i);
        assert_eq!(out, [0, 1]);
    });
}

#[cfg(feature = "smol-backend")]
#[test]
fn under_the_gil_switch_compat_smol_unblock_receiver_and_sender_both_run() {
    if !in_gil_child(
        "under_the_gil_switch_compat_smol_unblock_receiver_and_sender_both_run",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        assert_default_is_serialized();
        let got = receiver_then_sender(
            unirun::compat::smol::unblock,
            unirun::compat::smol::block_on,
        );
        assert_eq!(got, 1);
    });
}

#[cfg(feature = "tokio-backend")]
#[test]
fn under_the_gil_switch_compat_tokio_spawn_blocking_receiver_and_sender_both_run() {
    if !in_gil_child(
        "under_the_gil_switch_compat_tokio_spawn_blocking_receiver_and_sender_both_run",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        assert_default_is_serialized();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _inside = rt.enter();
        let got = receiver_then_sender(unirun::compat::tokio::task::spawn_blocking, |h| {
            rt.block_on(h).unwrap()
        });
        assert_eq!(got, 1);
    });
}

/// The switch still serializes what it can without risking a deadlock:
/// the polls of the helpers' async tasks.
#[test]
fn under_the_gil_switch_async_tasks_still_run_one_at_a_time() {
    if !in_gil_child(
        "under_the_gil_switch_async_tasks_still_run_one_at_a_time",
        &[("UNIRUN_MAX_WORKERS", "4")],
    ) {
        return;
    }
    watchdog_this_test(|| {
        assert_default_is_serialized();
        let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (now, max) = (now.clone(), max.clone());
                unirun::spawn(async move {
                    for _ in 0..10 {
                        let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(inside, Ordering::SeqCst);
                        for _ in 0..200 {
                            std::hint::spin_loop();
                        }
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                        YieldNow(false).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.join().unwrap();
        }
        // Nothing in a poll sleeps, so no holder is lent out. (Off Linux
        // the lock is a 5 ms switch interval, and a poll preempted that
        // long may be overlapped.)
        if cfg!(target_os = "linux") {
            assert_eq!(max.load(Ordering::SeqCst), 1);
        } else {
            unirun_test_support::skip(
                "under_the_gil_switch_async_tasks_still_run_one_at_a_time",
                "the no-overlap check: off Linux the lock is a 5 ms switch interval",
            );
        }
    });
}

/// Returns `Pending` once, waking itself: a point where a task lets others run.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// A program that chose `Gil` in code gets its blocking closures
/// serialized (it asked for that), but `compat::thread` still mirrors
/// std's independent threads.
#[test]
fn gil_chosen_in_code_leaves_compat_threads_independent() {
    if !in_gil_child("gil_chosen_in_code_leaves_compat_threads_independent", &[]) {
        return;
    }
    watchdog_this_test(|| {
        unirun::configure(RuntimeConfig::default().thread_mode(ThreadMode::Gil)).unwrap();
        assert_default_is_serialized();
        let got = receiver_then_sender(unirun::compat::thread::spawn, |h| h.join().unwrap());
        assert_eq!(got, 1);
    });
}

// --- a holder blocked in the kernel lends the lock ---------------------------
//
// Polls and blocking closures may block where unirun cannot see it (a std
// `Barrier`, a foreign `block_on`, a channel receive). Such a holder is
// asleep in the kernel, not running Rust work, so a waiter enters while it
// sleeps (see the `gil` module docs): what runs stays serialized, and a
// program that works without the switch works with it.

/// The review's program: two tasks on a 2-worker scope meet at a std
/// `Barrier` inside their polls. Each holds the gil while it waits at the
/// barrier, so without lending the second never polls.
#[test]
fn under_the_gil_switch_two_tasks_meeting_at_a_std_barrier_inside_their_polls_both_finish() {
    if !in_gil_child(
        "under_the_gil_switch_two_tasks_meeting_at_a_std_barrier_inside_their_polls_both_finish",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        let run = Run::builder().max_workers(2).build().unwrap();
        assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
        for _ in 0..20 {
            let barrier = Arc::new(Barrier::new(2));
            let (b1, b2) = (barrier.clone(), barrier);
            let h1 = run.spawn(async move {
                b1.wait();
                1
            });
            let h2 = run.spawn(async move {
                b2.wait();
                2
            });
            assert_eq!(h1.join().unwrap() + h2.join().unwrap(), 3);
        }
    });
}

/// The likelier shape: a task waits for a sibling's result inside a
/// foreign `block_on` (here `futures::executor::block_on`), which parks its
/// thread where unirun cannot see it. The sibling starts only after the
/// waiter provably holds its worker.
#[test]
fn under_the_gil_switch_a_task_in_a_foreign_block_on_waiting_for_a_sibling_finishes() {
    if !in_gil_child(
        "under_the_gil_switch_a_task_in_a_foreign_block_on_waiting_for_a_sibling_finishes",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        let run = Run::builder().max_workers(2).build().unwrap();
        assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
        for round in 0..20u32 {
            let (tx, rx) = futures::channel::oneshot::channel::<u32>();
            let (started_tx, started) = mpsc::channel::<()>();
            let waiter = run.spawn(async move {
                started_tx.send(()).unwrap();
                futures::executor::block_on(rx).unwrap()
            });
            started.recv().unwrap();
            let sender = run.spawn(async move { tx.send(round).unwrap() });
            assert_eq!(waiter.join().unwrap(), round);
            sender.join().unwrap();
        }
    });
}

/// A program that chose `Gil` in code asked for exclusion: its blocking
/// closures never overlap, even while one sleeps in the kernel (the lock is
/// lent only under the operator switch). Two read-sleep-write sections
/// keep both updates.
#[test]
fn under_a_gil_chosen_in_code_closures_that_sleep_still_never_overlap() {
    watchdog_this_test(|| {
        let run = gil_scope("no-lend");
        assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
        let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let counter = counter.clone();
                run.spawn_blocking(move || {
                    let seen = counter.load(Ordering::SeqCst);
                    // Asleep in the kernel for many looks: a lent lock
                    // would let the other closure read the same value.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    counter.store(seen + 1, Ordering::SeqCst);
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::SeqCst), 2);
    });
}

/// Under the switch, a poll that waits for a sibling in short naps (a
/// `sleep` loop: asleep at every look, running a little in between) is
/// still lent out, so the sibling runs and sets its flag.
#[test]
fn under_the_gil_switch_a_poll_napping_until_a_sibling_sets_a_flag_ends() {
    if !in_gil_child(
        "under_the_gil_switch_a_poll_napping_until_a_sibling_sets_a_flag_ends",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        let run = Run::builder().max_workers(2).build().unwrap();
        assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
        for _ in 0..5 {
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (started_tx, started) = mpsc::channel::<()>();
            let napper = {
                let flag = flag.clone();
                run.spawn(async move {
                    started_tx.send(()).unwrap();
                    while !flag.load(Ordering::Acquire) {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                    1u32
                })
            };
            started.recv().unwrap();
            let setter = run.spawn(async move { flag.store(true, Ordering::Release) });
            setter.join().unwrap();
            assert_eq!(napper.join().unwrap(), 1);
        }
    });
}

/// Why blocking closures stay outside the operator switch's gil: a running
/// closure cannot be made to let go, and one that computes until a sibling
/// task tells it to stop never sleeps, so it would never lend the lock to
/// that sibling. Under the switch it ends.
#[test]
fn under_the_gil_switch_a_closure_computing_until_a_sibling_task_stops_it_ends() {
    if !in_gil_child(
        "under_the_gil_switch_a_closure_computing_until_a_sibling_task_stops_it_ends",
        &[],
    ) {
        return;
    }
    watchdog_this_test(|| {
        let run = Run::builder().max_workers(2).build().unwrap();
        assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started_tx, started) = mpsc::channel::<()>();
        let worker = {
            let stop = stop.clone();
            run.spawn_blocking(move || {
                started_tx.send(()).unwrap();
                let mut rounds = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    rounds = rounds.wrapping_add(1);
                    std::hint::spin_loop();
                }
                rounds
            })
        };
        started.recv().unwrap();
        let stopper = run.spawn(async move { stop.store(true, Ordering::SeqCst) });
        stopper.join().unwrap();
        worker.join().unwrap();
    });
}

// --- a forked child does not inherit the parent's holders ---------------

/// A child forked while another thread of the parent holds a gil chosen in
/// code (never lent): in the child that thread does not exist, so waiting
/// for it to let go would wait for good. The child's own lock starts free,
/// and `block_on` on the inherited scope answers.
#[cfg(all(target_os = "linux", feature = "process-backend"))]
#[test]
fn a_child_forked_while_a_parent_thread_holds_the_gil_can_take_it() {
    watchdog_this_test(|| {
        let run = gil_scope("fork-held");
        let (inside_tx, inside_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        // Chosen in code: the closure holds the gil while it waits.
        let holder = run.spawn_blocking(move || {
            inside_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        inside_rx.recv().unwrap();
        let in_child = run.clone();
        let answer = unirun::to_process_with(
            unirun::ProcessOptions::default().timeout(std::time::Duration::from_secs(20)),
            move || in_child.block_on(async { 7_u32 }),
        )
        .join();
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(
            answer.expect("the child waited for a holder it does not have"),
            7
        );
        // The parent's lock is untouched by the child: still usable here.
        assert_eq!(run.block_on(async { 8_u32 }), 8);
    });
}

/// A blocking closure of a gil scope chosen in code (it holds the gil)
/// forks with a plain `fork`. In the child its code still runs under the
/// gil: a task of the scope woken there by a timer, on another thread of
/// the child, must wait until the closure lets go (here: joins it, which
/// releases the gil) instead of running beside it.
///
/// The closure waits up to a while for the task to say it ran: a task
/// that runs beside it says so at once and fails the test; one that waits
/// for the gil cannot, and the wait ends at its limit. Only how fast a
/// wrong child is caught depends on that limit, never whether a right one
/// passes.
#[cfg(unix)]
#[test]
fn a_hold_taken_before_a_fork_still_excludes_the_childs_threads() {
    if !unirun_test_support::child::in_child_process(
        "a_hold_taken_before_a_fork_still_excludes_the_childs_threads",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let run = gil_scope("forking");
        let in_child = run.clone();
        let status = run
            .spawn_blocking(move || {
                // SAFETY: the child runs unirun code and leaves with `_exit`.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: async-signal-safe; a hung child dies of it.
                    unsafe { libc::alarm(60) };
                    let (ran_tx, ran_rx) = mpsc::channel();
                    let task = in_child.spawn(async move {
                        unirun::time::sleep(Duration::from_millis(1)).await;
                        let _ = ran_tx.send(());
                    });
                    // Still holding the gil: the task must not run now.
                    let beside = ran_rx.recv_timeout(Duration::from_millis(300)).is_ok();
                    // Joining releases the gil: now it runs.
                    let joined = task.join().is_ok();
                    let code = match (beside, joined) {
                        (false, true) => 0,
                        (true, _) => 3,
                        (false, false) => 4,
                    };
                    // SAFETY: ends the child without running the parent's
                    // destructors or atexit handlers.
                    unsafe { libc::_exit(code) };
                }
                let mut status = 0;
                // SAFETY: our own child; `status` is a valid out pointer.
                // Ends: the child exits, or `alarm` kills it.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(waited, pid);
                status
            })
            .join()
            .unwrap();
        assert!(
            libc::WIFEXITED(status),
            "the child died (status {status:#x})"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "3: a task of the scope ran in the child beside the closure that held the gil"
        );
    });
}

/// Every gil scope installs the gil's fork hook (`global::gil_for_scope`),
/// and so does every miss of the shared default's cache: the core keeps
/// one hook, so after many installs a fork still runs it once per fork
/// mark. Run twice for one mark, the second run would take the forking
/// thread's gil again on the child's lock, which that very thread already
/// holds there: a gil chosen in code is never lent, so the child would
/// wait for good inside the fork handler.
///
/// The child then shows that it holds the gil exactly once: `block_on`
/// on the scope (re-entrant, no new lock) answers, and a task of the
/// scope runs only once the closure lets go (a join releases the gil).
#[cfg(unix)]
#[test]
fn many_gil_scopes_before_a_fork_leave_one_fork_hook() {
    if !unirun_test_support::child::in_child_process(
        "many_gil_scopes_before_a_fork_leave_one_fork_hook",
    ) {
        return;
    }
    watchdog_this_test(|| {
        // Each install replaces the hook with the same function.
        let others: Vec<_> = (0..3).map(|i| gil_scope(&format!("hook-{i}"))).collect();
        let _ = unirun::get_executor();
        let run = gil_scope("hook-forking");
        let in_child = run.clone();
        let status = run
            .spawn_blocking(move || {
                // SAFETY: the child runs unirun code and leaves with `_exit`.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let answered = in_child.block_on(async { 5_u32 }) == 5;
                    let joined = in_child.spawn(async { 6_u32 }).join().ok() == Some(6);
                    let code = match (answered, joined) {
                        (true, true) => 0,
                        (false, _) => 3,
                        (true, false) => 4,
                    };
                    // SAFETY: ends the child without running the parent's
                    // destructors or atexit handlers.
                    unsafe { libc::_exit(code) };
                }
                // A watchdog for the child only: a child stuck in the fork
                // handler never reaches its own code (no `alarm` there), so
                // it is killed here (before the test's own watchdog
                // fires) rather than left behind.
                let (done_tx, done_rx) = mpsc::channel::<()>();
                let guard = std::thread::spawn(move || {
                    if done_rx.recv_timeout(Duration::from_secs(30)).is_err() {
                        // SAFETY: our own child; after 30 s without the
                        // `done` below, `waitpid` has not returned, so it
                        // is not reaped and the pid is still its own.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                });
                let mut status = 0;
                // SAFETY: our own child; `status` is a valid out pointer.
                // Ends: the child exits, or the guard kills it.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                let _ = done_tx.send(());
                guard.join().unwrap();
                assert_eq!(waited, pid);
                status
            })
            .join()
            .unwrap();
        drop(others);
        assert!(
            libc::WIFEXITED(status),
            "the child died (status {status:#x}): stuck taking the gil it held, the fork hook ran twice"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "3: block_on on the held scope failed; 4: a task of the scope did not run after the join"
        );
    });
}
