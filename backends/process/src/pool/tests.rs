//! Unit tests of the pool: replacement of failed workers, payload sizes,
//! the concurrency cap, and the fast path of handle calls.

use super::*;
use std::os::fd::AsFd;
use std::time::Duration;
use unirun_test_support::watchdog;

/// A step a test runs inside the pool (see `Inner::before_place`).
pub(super) type Hook = Box<dyn FnOnce(&Inner) + Send>;

fn crash(signal: i32) -> u8 {
    // SAFETY: SIG_DFL is valid for these signals; raising one at
    // ourselves has no memory-safety preconditions.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    unreachable!()
}

#[test]
fn crashed_and_timed_out_workers_are_replaced() {
    let pool = ProcessPool::new(
        1,
        ProcessOptions::default().timeout(Duration::from_millis(100)),
    );
    assert_eq!(pool.call(|x: u8| x + 1, 1).unwrap(), 2);
    let err = pool.call(crash, libc::SIGSEGV).unwrap_err();
    assert_eq!(err.signal_name(), Some("SIGSEGV"), "{err}");
    assert_eq!(pool.call(|x: u8| x + 1, 2).unwrap(), 3);
    let err = pool
        .call(
            |()| -> u8 {
                loop {
                    std::thread::park()
                }
            },
            (),
        )
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(pool.call(|x: u8| x + 1, 3).unwrap(), 4);
    assert_eq!(pool.started(), 3);
}

#[test]
fn large_payloads_both_ways() {
    let pool = ProcessPool::new(1, ProcessOptions::default());
    let data: Vec<u32> = (0..4_000_000).collect();
    let back = pool
        .call(
            |v: Vec<u32>| v.into_iter().map(|x| x ^ 1).collect::<Vec<u32>>(),
            data,
        )
        .unwrap();
    assert_eq!(back.len(), 4_000_000);
    assert_eq!(back[10], 11);
}

#[test]
fn concurrency_is_capped() {
    let pool = ProcessPool::new(2, ProcessOptions::default());
    let threads: Vec<_> = (0..6u32)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.call(|x: u32| x * 2, i).unwrap())
        })
        .collect();
    let mut out: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    out.sort_unstable();
    assert_eq!(out, [0, 2, 4, 6, 8, 10]);
    assert!(pool.started() <= 2);
}

/// A blocking lane that counts what it is handed, then passes it on to a
/// real lane.
struct Counting {
    lane: Arc<dyn RunQueue>,
    scheduled: AtomicUsize,
}

impl RunQueue for Counting {
    fn schedule(&self, runnable: unirun_core::Runnable, info: unirun_core::ScheduleInfo) {
        self.scheduled.fetch_add(1, Ordering::SeqCst);
        self.lane.schedule(runnable, info);
    }
}

fn counting_lane(threads: &unirun_threads::ThreadPool) -> Arc<Counting> {
    Arc::new(Counting {
        lane: threads.handle().blocking_run_queue(),
        scheduled: AtomicUsize::new(0),
    })
}

fn add_one(x: u64) -> u64 {
    x + 1
}

#[test]
fn a_joined_call_is_read_by_the_joining_thread_not_the_lane() {
    watchdog("joined call", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        // The first call starts the worker, through the lane.
        let first = pool.spawn_call_on(lane.clone(), None, add_one, 1);
        assert_eq!(first.join().unwrap(), 2);
        assert_eq!(lane.scheduled.load(Ordering::SeqCst), 1);
        for i in 0..100 {
            let handle = pool.spawn_call_on(lane.clone(), None, add_one, i);
            assert_eq!(handle.join().unwrap(), i + 1);
        }
        assert_eq!(lane.scheduled.load(Ordering::SeqCst), 1, "no lane hop");
        assert_eq!(pool.started(), 1);
    });
}

/// Sends its argument's byte down the pipe, then waits for the pipe to
/// close: a call that has visibly started but cannot end on its own.
fn signal_and_wait(fds: (i32, i32)) -> u8 {
    let (write, read) = fds;
    let byte = [7u8];
    // SAFETY: both descriptors were inherited open from the test; the
    // buffers are live for the calls.
    unsafe {
        libc::write(write, byte.as_ptr().cast(), 1);
        let mut buf = [0u8; 1];
        libc::read(read, buf.as_mut_ptr().cast(), 1);
    }
    9
}

#[test]
fn a_call_starts_before_its_handle_is_joined_or_polled() {
    use std::os::fd::AsRawFd;
    watchdog("eager start", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        // Opened before the worker is forked, so it inherits them.
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let handle = pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds);
        // Nobody joins or polls: the worker runs the call anyway.
        let mut byte = [0u8; 1];
        let read = sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        assert_eq!((read, byte[0]), (Some(1), 7));
        assert_eq!(
            lane.scheduled.load(Ordering::SeqCst),
            1,
            "sent by the caller"
        );
        sys::write_all(release_write.as_fd(), &[1]).unwrap();
        assert_eq!(handle.join().unwrap(), 9);
    });
}

#[test]
fn a_detached_call_finishes_on_the_reply_watcher_and_frees_its_worker() {
    use std::os::fd::AsRawFd;
    watchdog("detached call", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        assert!(!pool.inner.replies.running(), "started on first use");
        pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds)
            .detach();
        assert_eq!(
            lane.scheduled.load(Ordering::SeqCst),
            1,
            "the reader did not go to the lane"
        );
        assert!(
            pool.inner.replies.running(),
            "the reader went to the watcher"
        );
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        sys::write_all(release_write.as_fd(), &[1]).unwrap();
        // The watcher reads the reply and hands the one worker back.
        assert_eq!(pool.call(add_one, 5).unwrap(), 6);
        assert_eq!(pool.started(), 1);
        pool.shutdown_now();
        assert!(!pool.inner.replies.running(), "joined by the shutdown");
    });
}

#[test]
fn an_aborted_call_resolves_cancelled_and_frees_its_worker() {
    use std::os::fd::AsRawFd;
    watchdog("aborted call", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        // Opened before the worker is forked, so it inherits them.
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        let first = pool.spawn_call_on(lane.clone(), None, add_one, 0);
        assert_eq!(first.join().unwrap(), 1);
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let handle = pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds);
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        // Running in the worker, so it cannot have finished: cancelled.
        handle.abort();
        sys::write_all(release_write.as_fd(), &[1]).unwrap();
        assert!(handle.join().unwrap_err().is_cancelled());
        // The lane read the discarded reply and handed the worker back.
        assert_eq!(pool.call(add_one, 5).unwrap(), 6);
        assert_eq!(pool.started(), 1);
    });
}

#[test]
fn unjoined_calls_do_not_keep_a_later_call_from_a_worker() {
    watchdog("joined out of order", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(2, ProcessOptions::default());
        let warm: Vec<_> = (0..2)
            .map(|i| pool.spawn_call_on(lane.clone(), None, add_one, i))
            .collect();
        for handle in warm {
            handle.join().unwrap();
        }
        // Two calls take both workers; nobody reads their replies yet.
        let handles: Vec<_> = (0..6)
            .map(|i| pool.spawn_call_on(lane.clone(), None, add_one, i))
            .collect();
        // Joined last first: the later calls wait for a worker and read the
        // earlier replies themselves.
        let mut out: Vec<u64> = handles
            .into_iter()
            .rev()
            .map(|h| h.join().unwrap())
            .collect();
        out.reverse();
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        // The synchronous API meets pending readers the same way.
        let pending = pool.spawn_call_on(lane.clone(), None, add_one, 10);
        let other = pool.spawn_call_on(lane.clone(), None, add_one, 20);
        assert_eq!(pool.call(add_one, 30).unwrap(), 31);
        assert_eq!((pending.join().unwrap(), other.join().unwrap()), (11, 21));
        assert!(pool.started() <= 2);
    });
}

#[test]
fn polling_is_finished_alone_sees_a_call_end() {
    watchdog("is_finished loop", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let handle = pool.spawn_call_on(lane.clone(), None, add_one, 1);
        while !handle.is_finished() {
            std::thread::yield_now();
        }
        assert_eq!(handle.join().unwrap(), 2);
    });
}

#[test]
fn an_awaited_call_resolves() {
    watchdog("awaited call", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let handle = pool.spawn_call_on(lane.clone(), None, add_one, 1);
        // Awaited inside a task of its own, beside a value computed there.
        let task = threads
            .handle()
            .spawn(async move { handle.await.map(|v| v * 10) });
        assert_eq!(task.join().unwrap().unwrap(), 20);
    });
}

/// `add_one`, or a crash of the worker for one marked argument.
fn add_one_or_crash(x: u64) -> u64 {
    if x == 77 {
        crash(libc::SIGSEGV);
    }
    x + 1
}

#[test]
fn every_task_awaiting_a_call_wakes_though_the_watcher_holds_wakes_in_a_busy_stretch() {
    watchdog("awaited calls behind busy workers", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(2, ProcessOptions::default());
        for i in 0..2 {
            let handle = pool.spawn_call_on(lane.clone(), None, add_one, i);
            assert_eq!(handle.join().unwrap(), i + 1);
        }
        // Many more calls than workers, each awaited by its own task: the
        // watcher completes them back to back, holding the wakes of their
        // tasks, and one worker crashes among them (its end of file is
        // read on the watcher too).
        let tasks: Vec<_> = (0..300u64)
            .map(|i| {
                let call = pool.spawn_call_on(lane.clone(), None, add_one_or_crash, i);
                threads.handle().spawn(call)
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let result = task.join().unwrap();
            if i == 77 {
                assert!(result.unwrap_err().is_crash());
            } else {
                assert_eq!(result.unwrap(), i as u64 + 1);
            }
        }
        assert_eq!(pool.crashes(), 1);
        assert_eq!(pool.call(add_one, 1).unwrap(), 2);
    });
}

#[test]
fn joined_calls_keep_timeouts_and_crash_reports() {
    watchdog("faults on the fast path", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        // Long enough for a panicking child to print a backtrace.
        let options = ProcessOptions::default().timeout(Duration::from_secs(2));
        let pool = ProcessPool::new(1, options);
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let err = pool
            .spawn_call_on(lane.clone(), None, crash, libc::SIGSEGV)
            .join()
            .unwrap_err();
        assert_eq!(err.signal_name(), Some("SIGSEGV"), "{err}");
        // The crashed worker is replaced (through the lane: none is idle).
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 1)
                .join()
                .unwrap(),
            2
        );
        let stuck = |()| -> u8 {
            loop {
                std::thread::park()
            }
        };
        let err = pool
            .spawn_call_on(lane.clone(), None, stuck, ())
            .join()
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        let err = pool.spawn_call_on(
            lane.clone(),
            None,
            |s: String| -> u8 { panic!("{s}") },
            "bad".into(),
        );
        let err = err.join().unwrap_err();
        assert_eq!(err.panic_message(), Some("bad"), "{err}");
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 2)
                .join()
                .unwrap(),
            3
        );
        assert_eq!(pool.started(), 3);
    });
}

#[test]
fn shutdown_now_cancels_calls_nobody_joined_yet() {
    use std::os::fd::AsRawFd;
    watchdog("shutdown with pending readers", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, _release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let handle = pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds);
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        pool.shutdown_now();
        assert!(handle.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn start_pending_lets_calls_finish_without_their_joiner() {
    watchdog("start_pending", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let set = Arc::new(TaskSet::new());
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let handle = pool.spawn_call_on(lane.clone(), Some(set.clone()), add_one, 1);
        assert_eq!(set.len(), 1, "a member from the start");
        pool.start_pending();
        // What a scope's shutdown does next: wait for its tasks (this
        // would hang, and the watchdog fail, if nobody read the reply).
        unirun_core::block_on(set.wait_empty());
        // Later calls go through the lane at once.
        let later = pool.spawn_call_on(lane.clone(), Some(set.clone()), add_one, 2);
        unirun_core::block_on(set.wait_empty());
        assert_eq!((handle.join().unwrap(), later.join().unwrap()), (2, 3));
    });
}

#[test]
fn large_requests_go_through_the_lane() {
    watchdog("slow path", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let before = lane.scheduled.load(Ordering::SeqCst);
        let big = vec![1u8; 2 * INLINE_REQUEST];
        let sum = pool.spawn_call_on(lane.clone(), None, |v: Vec<u8>| v.len(), big);
        assert_eq!(sum.join().unwrap(), 2 * INLINE_REQUEST);
        assert_eq!(lane.scheduled.load(Ordering::SeqCst), before + 1);
    });
}

#[test]
fn calls_queued_behind_busy_workers_resolve_however_they_are_waited_for() {
    watchdog("queued calls", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let mut handles: Vec<_> = (0..40)
            .map(|i| Some(pool.spawn_call_on(lane.clone(), None, add_one, i)))
            .collect();
        // One each way: joined, awaited, polled with `is_finished`,
        // detached; the rest joined in order.
        assert_eq!(handles[20].take().unwrap().join().unwrap(), 21);
        let awaited = handles[30].take().unwrap();
        let task = threads
            .handle()
            .spawn(async move { awaited.await.map(|v| v * 2) });
        let polled = handles[35].take().unwrap();
        while !polled.is_finished() {
            std::thread::yield_now();
        }
        handles[39].take().unwrap().detach();
        for (i, handle) in handles.into_iter().enumerate() {
            if let Some(handle) = handle {
                assert_eq!(handle.join().unwrap(), i as u64 + 1);
            }
        }
        assert_eq!(task.join().unwrap().unwrap(), 62);
        assert_eq!(polled.join().unwrap(), 36);
        assert_eq!(
            pool.call(add_one, 99).unwrap(),
            100,
            "the worker is free again"
        );
        assert_eq!(pool.started(), 1);
        // Each call scheduled at most its reader: no lane thread per call
        // waiting for a worker on top.
        assert!(lane.scheduled.load(Ordering::SeqCst) <= 41);
    });
}

#[test]
fn a_crash_ahead_of_queued_calls_hands_them_a_new_worker() {
    watchdog("crash ahead of the queue", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let crashed = pool.spawn_call_on(lane.clone(), None, crash, libc::SIGKILL);
        let queued: Vec<_> = (0..5)
            .map(|i| pool.spawn_call_on(lane.clone(), None, add_one, i))
            .collect();
        // Detached: nobody joins them, the pool moves them along.
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, handle) in queued.into_iter().enumerate() {
            let tx = tx.clone();
            threads
                .handle()
                .spawn(async move { tx.send((i, handle.await)).unwrap() })
                .detach();
        }
        let mut got: Vec<(usize, u64)> = (0..5)
            .map(|_| {
                let (i, out) = rx.recv().unwrap();
                (i, out.unwrap())
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
        assert_eq!(crashed.join().unwrap_err().signal_name(), Some("SIGKILL"));
        assert_eq!(pool.started(), 2, "one replacement");
    });
}

#[test]
fn shutdown_now_cancels_queued_calls() {
    use std::os::fd::AsRawFd;
    watchdog("shutdown with a queue", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, _release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let stuck = pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds);
        let queued: Vec<_> = (0..3)
            .map(|i| pool.spawn_call_on(lane.clone(), None, add_one, i))
            .collect();
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        pool.shutdown_now();
        assert!(stuck.join().unwrap_err().is_cancelled());
        for handle in queued {
            assert!(handle.join().unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn the_deadline_watcher_times_calls_out_and_ends_with_the_pool() {
    watchdog("deadline watcher", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let options = ProcessOptions::default().timeout(Duration::from_millis(300));
        let pool = ProcessPool::new(1, options);
        let watcher = || pool.inner.deadlines.as_ref().unwrap().running();
        assert!(!watcher(), "started with the first call");
        assert_eq!(pool.call(add_one, 1).unwrap(), 2);
        assert!(watcher());
        let stuck = |()| -> u8 {
            loop {
                std::thread::park()
            }
        };
        // Joined at once, and read later by a detached reader: both time out.
        let err = pool
            .spawn_call_on(lane.clone(), None, stuck, ())
            .join()
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 2)
                .join()
                .unwrap(),
            3
        );
        let late = pool.spawn_call_on(lane.clone(), None, stuck, ());
        // Nobody joins it: the next call, finding the one worker busy,
        // reads it; the watcher kills the worker at the deadline, and that
        // call gets a replacement.
        assert_eq!(pool.call(add_one, 3).unwrap(), 4);
        assert!(late.join().unwrap_err().is_timeout());
        assert_eq!(pool.started(), 3);
        pool.shutdown_now();
        assert!(!watcher(), "joined by the shutdown");
        // A pool without a timeout has no watcher.
        let untimed = ProcessPool::new(1, ProcessOptions::default().timeout(None));
        assert_eq!(untimed.call(add_one, 1).unwrap(), 2);
        assert!(untimed.inner.deadlines.is_none());
    });
}

mod replies;

/// The fast path's first look found an idle worker, but the worker was
/// gone when the call was placed (it retired in between): the call goes to
/// the lane with the reader it made as its task, so it counts as one task
/// spawned and none cancelled (it used to count two spawned, one
/// cancelled).
#[test]
fn a_call_that_falls_back_to_the_lane_counts_as_one_task() {
    watchdog("fallback counts", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(pool.call(add_one, 0).unwrap(), 1); // one idle worker
        *pool.inner.before_place.lock().unwrap() = Some(Box::new(|inner: &Inner| {
            let worker = inner.lock().idle.pop().expect("the idle worker");
            worker.kill_and_reap();
            inner.retire();
        }));
        let before = threads.handle().task_counts();
        let handle = pool.spawn_call(&threads.handle(), add_one, 41);
        assert_eq!(handle.join().unwrap(), 42);
        let after = threads.handle().task_counts();
        assert_eq!(after.spawned() - before.spawned(), 1);
        assert_eq!(after.cancelled() - before.cancelled(), 0);
        assert_eq!(after.completed() - before.completed(), 1);
        assert_eq!(pool.calls(), 2);
        assert_eq!(pool.started(), 2); // the replacement
    });
}

/// Code mapped in the parent after the worker was forked (as a library
/// loaded after `init()` is) is not in the worker: the call fails with a
/// typed error instead of the worker jumping into nothing, and the worker
/// keeps serving.
#[test]
fn a_function_loaded_after_the_worker_started_is_a_typed_error_not_a_wild_jump() {
    watchdog("code not in the worker", || {
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(pool.call(add_one, 0).unwrap(), 1); // the worker started
        let page = 4096;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // it is never executed (only its address travels) nor unmapped.
        let code = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(code, libc::MAP_FAILED);
        // SAFETY: a non-null address as a function pointer; the parent
        // never calls it, and the pool must refuse to send it.
        let late: fn(u64) -> u64 =
            unsafe { std::mem::transmute::<*mut libc::c_void, fn(u64) -> u64>(code) };
        let err = pool.call(late, 1).unwrap_err();
        assert!(err.is_transport(), "{err}");
        assert!(err.to_string().contains("not in the worker"), "{err}");
        // The same through the fast path.
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let err = pool
            .spawn_call(&threads.handle(), late, 1)
            .join()
            .unwrap_err();
        assert!(err.to_string().contains("not in the worker"), "{err}");
        assert_eq!(pool.call(add_one, 2).unwrap(), 3);
        assert_eq!(pool.started(), 1);
        assert_eq!(pool.crashes(), 0);
    });
}

#[test]
fn retire_lets_go_of_sent_calls_without_waiting_and_cancels_queued_ones() {
    use std::os::fd::AsRawFd;
    watchdog("retire", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        let executor = threads.handle();
        assert_eq!(pool.spawn_call(&executor, add_one, 0).join().unwrap(), 1);
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let running = pool.spawn_call(&executor, signal_and_wait, fds);
        // Asked about: its reader goes to the reply watcher.
        assert!(!running.is_finished());
        let queued = pool.spawn_call(&executor, add_one, 1);
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        pool.retire();
        assert!(!pool.inner.replies.running(), "nothing left to watch");
        // Waits for the lane's task set: the running call is not in it any
        // more (it cannot end before the release below).
        threads.shutdown();
        assert!(!running.is_finished());
        assert!(queued.join().unwrap_err().is_cancelled());
        assert!(pool.call(add_one, 2).unwrap_err().is_cancelled());
        sys::write_all(release_write.as_fd(), &[1]).unwrap();
        // Awaited, not joined: the result reaches a polling handle too.
        assert_eq!(unirun_core::block_on(running).unwrap(), 9);
        // Its worker was the last: killed and reaped with the call.
        assert_eq!(pool.inner.lock().live, 0);
        pool.shutdown_now();
    });
}

#[test]
fn a_call_let_go_of_by_a_retired_pool_still_times_out() {
    watchdog("retired timeout", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let pool = ProcessPool::new(
            1,
            ProcessOptions::default().timeout(Duration::from_millis(200)),
        );
        let executor = threads.handle();
        assert_eq!(pool.spawn_call(&executor, add_one, 0).join().unwrap(), 1);
        let stuck = pool.spawn_call(
            &executor,
            |()| -> u8 {
                loop {
                    std::thread::park()
                }
            },
            (),
        );
        pool.retire();
        // A shutdown meanwhile leaves the call alone: its timeout ends it.
        pool.shutdown_now();
        threads.shutdown();
        let err = stuck.join().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(pool.timeouts(), 1);
    });
}

/// Says it was woken, then panics.
struct PanickingWaker(std::sync::Mutex<std::sync::mpsc::Sender<()>>);

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
        panic!("this waker panics");
    }
}

fn slow_add_one(x: u64) -> u64 {
    // Slow enough that the parent's first poll finds the call pending.
    std::thread::sleep(Duration::from_millis(200));
    x + 1
}

/// A task awaiting a call with a waker that panics: the reply watcher
/// wakes it (the panic is contained) and goes on reading replies, so a
/// later awaited call completes.
#[test]
fn a_panicking_waker_does_not_stop_the_reply_watcher() {
    watchdog("a_panicking_waker_does_not_stop_the_reply_watcher", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        // The pool's worker and the watcher are up.
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 0)
                .join()
                .unwrap(),
            1
        );
        let (woken_tx, woken) = std::sync::mpsc::channel();
        let waker =
            std::task::Waker::from(Arc::new(PanickingWaker(std::sync::Mutex::new(woken_tx))));
        let mut first = pool.spawn_call_on(lane.clone(), None, slow_add_one, 1);
        let polled = std::future::Future::poll(
            std::pin::Pin::new(&mut first),
            &mut std::task::Context::from_waker(&waker),
        );
        assert!(
            polled.is_pending(),
            "the call took under 200 ms to come back"
        );
        // The watcher ran the panicking wake.
        woken.recv().unwrap();
        let second = threads
            .handle()
            .spawn(pool.spawn_call_on(lane.clone(), None, add_one, 5));
        assert_eq!(second.join().unwrap().unwrap(), 6);
        assert_eq!(first.join().unwrap(), 2);
    });
}

/// Threads of this process whose name starts with `prefix` (Linux names
/// are cut to 15 bytes).
fn threads_named(prefix: &str) -> usize {
    unirun_test_support::threads_named(prefix).expect("lists threads (checked first)")
}

/// A call let go of by a retired pool, awaited with a waker that panics:
/// the thread that reads its reply wakes the handle (the panic contained),
/// still tells the pool the call ended, and ends; the pool, shut down
/// meanwhile, then stops its helpers. No thread of the pool's is left.
/// In a child process: it counts the process's threads.
#[test]
fn a_panicking_waker_on_a_call_let_go_of_leaks_no_thread() {
    use std::os::fd::AsRawFd;
    const NAME: &str = "pool::tests::a_panicking_waker_on_a_call_let_go_of_leaks_no_thread";
    if !unirun_test_support::lists_threads() || !unirun_test_support::child::in_child_process(NAME)
    {
        return;
    }
    watchdog(NAME, || {
        let pool_threads = [
            "unirun-deadline",
            "unirun-call-rea",
            "unirun-replies",
            "unirun-forker",
        ];
        let count = || pool_threads.iter().map(|p| threads_named(p)).sum::<usize>();
        assert_eq!(count(), 0, "no pool thread yet");
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, release_write) = sys::pipe().unwrap();
        // A timeout far off: the deadline watcher runs, and must be joined.
        let pool = ProcessPool::new(
            1,
            ProcessOptions::default().timeout(Duration::from_secs(3600)),
        );
        let executor = threads.handle();
        assert_eq!(pool.spawn_call(&executor, add_one, 0).join().unwrap(), 1);
        assert!(pool.inner.deadlines.as_ref().unwrap().running());
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let mut running = pool.spawn_call(&executor, signal_and_wait, fds);
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        pool.retire();
        // Awaited with a waker that panics: the handle waits for the
        // thread that now reads the reply.
        let (woken_tx, woken) = std::sync::mpsc::channel();
        let waker =
            std::task::Waker::from(Arc::new(PanickingWaker(std::sync::Mutex::new(woken_tx))));
        let polled = std::future::Future::poll(
            std::pin::Pin::new(&mut running),
            &mut std::task::Context::from_waker(&waker),
        );
        assert!(polled.is_pending(), "the call waits for the release below");
        // Calls let go of are left alone: the helpers stay for this one.
        pool.shutdown_now();
        sys::write_all(release_write.as_fd(), &[1]).unwrap();
        woken.recv().unwrap();
        // The reply was in before the wake.
        assert_eq!(running.join().unwrap(), 9);
        // The reader thread ends on its own (it is not joined, and names
        // itself once running); the wait ends once it has, which it does
        // after the wake returns.
        while threads_named("unirun-call-rea") != 0 {
            std::thread::yield_now();
        }
        assert!(
            !pool.inner.deadlines.as_ref().unwrap().running(),
            "the last call let go of stops the helpers"
        );
        drop(pool);
        threads.shutdown();
        // Every helper was joined; a joined thread leaves the list a moment
        // after its join returns (the kernel drops it last), so the wait
        // ends.
        while count() != 0 {
            std::thread::yield_now();
        }
    });
}
