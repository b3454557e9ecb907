//! The reply watcher: calls awaited from tasks are read by one thread, not
//! by a lane thread each, and keep their crash, timeout and shutdown
//! outcomes.

use super::*;
use std::os::fd::AsRawFd;

#[test]
fn awaited_calls_queued_behind_busy_workers_hold_no_lane_thread() {
    watchdog("awaited calls", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(2, ProcessOptions::default());
        // Both workers started, deterministically: the first one is held
        // by a call while the second starts.
        assert_eq!(pool.call(add_one, 0).unwrap(), 1);
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let held = pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds);
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        assert_eq!(
            pool.spawn_call_on(lane.clone(), None, add_one, 1)
                .join()
                .unwrap(),
            2
        );
        sys::write_all(release_write.as_fd(), &[1]).unwrap();
        assert_eq!(held.join().unwrap(), 9);
        assert_eq!(pool.started(), 2);
        let before = lane.scheduled.load(Ordering::SeqCst);
        assert!(!pool.inner.replies.running(), "started on first use");
        // Many more calls than workers, each awaited by its own task.
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let (pool, lane) = (pool.clone(), lane.clone());
                let lane: Arc<dyn RunQueue> = lane;
                threads
                    .handle()
                    .spawn(async move { pool.spawn_call_on(lane, None, add_one, i).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.join().unwrap().unwrap(), i as u64 + 1);
        }
        assert_eq!(
            lane.scheduled.load(Ordering::SeqCst),
            before,
            "no awaited call went through the lane"
        );
        assert!(pool.inner.replies.running());
        assert_eq!((pool.calls(), pool.started()), (203, 2));
        pool.shutdown_now();
        assert!(!pool.inner.replies.running(), "joined by the shutdown");
    });
}

/// Awaits `handle` in a task of `threads`.
fn awaited<R: Send + 'static>(
    threads: &unirun_threads::ThreadPool,
    handle: JoinHandle<R>,
) -> Result<R, JoinError> {
    threads.handle().spawn(handle).join().unwrap()
}

#[test]
fn awaited_calls_keep_crash_and_timeout_reports_and_counts() {
    watchdog("faults through the watcher", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let options = ProcessOptions::default().timeout(Duration::from_secs(1));
        let pool = ProcessPool::new(1, options);
        // Synchronous calls start (and restart) the worker: no lane.
        assert_eq!(pool.call(add_one, 0).unwrap(), 1);
        let crashed = pool.spawn_call_on(lane.clone(), None, crash, libc::SIGSEGV);
        let err = awaited(&threads, crashed).unwrap_err();
        assert_eq!(err.signal_name(), Some("SIGSEGV"), "{err}");
        assert!(pool.inner.replies.running(), "read by the watcher");
        assert_eq!((pool.crashes(), pool.timeouts()), (1, 0));
        assert_eq!(pool.call(add_one, 1).unwrap(), 2);
        let stuck = |()| -> u8 {
            loop {
                std::thread::park()
            }
        };
        // The deadline watcher kills the worker; its pipe's end of file
        // wakes the reply watcher.
        let late = pool.spawn_call_on(lane.clone(), None, stuck, ());
        assert!(awaited(&threads, late).unwrap_err().is_timeout());
        assert_eq!((pool.crashes(), pool.timeouts()), (1, 1));
        assert_eq!(pool.call(add_one, 2).unwrap(), 3);
        assert_eq!(pool.calls(), 5);
        assert_eq!(pool.started(), 3);
        assert_eq!(lane.scheduled.load(Ordering::SeqCst), 0, "no lane hop");
    });
}

#[test]
fn shutdown_now_cancels_calls_the_watcher_waits_for_and_joins_it() {
    watchdog("shutdown with a watched call", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let (started_read, started_write) = sys::pipe().unwrap();
        let (release_read, _release_write) = sys::pipe().unwrap();
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(pool.call(add_one, 0).unwrap(), 1);
        let fds = (started_write.as_raw_fd(), release_read.as_raw_fd());
        let stuck = pool.spawn_call_on(lane.clone(), None, signal_and_wait, fds);
        let queued: Vec<_> = (0..3)
            .map(|i| pool.spawn_call_on(lane.clone(), None, add_one, i))
            .collect();
        let mut byte = [0u8; 1];
        sys::read_until(started_read.as_fd(), &mut byte, None).unwrap();
        // Asked about, not joined: the watcher waits for its reply.
        assert!(!stuck.is_finished());
        assert!(pool.inner.replies.running());
        let (tx, rx) = std::sync::mpsc::channel();
        let send = tx.clone();
        threads
            .handle()
            .spawn(async move { send.send(stuck.await.map(u64::from)).unwrap() })
            .detach();
        for handle in queued {
            let tx = tx.clone();
            threads
                .handle()
                .spawn(async move { tx.send(handle.await).unwrap() })
                .detach();
        }
        pool.shutdown_now();
        assert!(!pool.inner.replies.running(), "joined by the shutdown");
        for _ in 0..4 {
            assert!(rx.recv().unwrap().unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn a_reply_already_in_the_pipe_when_the_call_is_awaited_is_seen() {
    watchdog("reply before the handoff", || {
        let threads = unirun_threads::ThreadPool::new().unwrap();
        let lane = counting_lane(&threads);
        let pool = ProcessPool::new(1, ProcessOptions::default());
        assert_eq!(pool.call(add_one, 0).unwrap(), 1);
        for i in 0..20 {
            let handle = pool.spawn_call_on(lane.clone(), None, add_one, i);
            let fd = pool.inner.lock().pending[0].1.reply_fd().unwrap();
            // Waits, without reading it, until the reply is in the pipe.
            let mut ready = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live `pollfd`; `fd` is the pending call's reply
            // pipe, open until its reader runs, which nobody has asked for.
            assert_eq!(unsafe { libc::poll(&mut ready, 1, -1) }, 1);
            // Armed after the reply came: the watcher still sees it.
            assert_eq!(awaited(&threads, handle).unwrap(), i + 1);
        }
        assert_eq!(lane.scheduled.load(Ordering::SeqCst), 0, "no lane hop");
        assert_eq!(pool.started(), 1);
    });
}
