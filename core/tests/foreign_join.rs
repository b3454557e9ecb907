//! `JoinHandle::from_foreign`: a foreign executor's join handle behind
//! unirun's `JoinHandle`, and `TaskFuture` catching a panic for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use unirun_core::{ForeignJoin, JoinError, JoinHandle, TaskFuture, TaskSet};
use unirun_test_support::watchdog;

/// A foreign handle that counts what unirun asks of it.
struct Probe {
    output: Option<Result<u32, JoinError>>,
    aborted: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl ForeignJoin<u32> for Probe {
    fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u32, JoinError>> {
        match self.output.take() {
            Some(output) => Poll::Ready(output),
            None => Poll::Pending,
        }
    }

    fn is_finished(&self) -> bool {
        self.output.is_some()
    }

    fn abort(&mut self) {
        self.aborted.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn probe(
    output: Option<Result<u32, JoinError>>,
) -> (JoinHandle<u32>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (aborted, dropped) = (Arc::default(), Arc::default());
    let handle = JoinHandle::from_foreign(Probe {
        output,
        aborted: Arc::clone(&aborted),
        dropped: Arc::clone(&dropped),
    });
    (handle, aborted, dropped)
}

#[test]
fn output_and_errors_pass_through() {
    let (handle, _, dropped) = probe(Some(Ok(5)));
    assert!(handle.is_finished());
    assert_eq!(unirun_core::block_on(handle).unwrap(), 5);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);

    let (handle, _, _) = probe(Some(Err(JoinError::cancelled())));
    assert!(unirun_core::block_on(handle).unwrap_err().is_cancelled());
}

#[test]
fn abort_reaches_the_foreign_handle_once_and_resolves_cancelled() {
    let (handle, aborted, _) = probe(None);
    assert!(!handle.is_finished());
    handle.abort();
    handle.abort();
    assert_eq!(aborted.load(Ordering::SeqCst), 1);
    assert!(handle.is_finished());
    assert!(handle.join().unwrap_err().is_cancelled());

    // A finished task keeps its output through an abort.
    let (handle, aborted, _) = probe(Some(Ok(1)));
    handle.abort();
    assert_eq!(aborted.load(Ordering::SeqCst), 0);
    assert_eq!(handle.join().unwrap(), 1);
}

#[test]
fn dropping_the_handle_drops_the_foreign_one_without_aborting() {
    let (handle, aborted, dropped) = probe(None);
    drop(handle);
    assert_eq!(aborted.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn task_future_catches_panics_and_joins_its_set() {
    let set = Arc::new(TaskSet::new());
    let task = TaskFuture::new(async { panic!("inside a foreign task") }, Some(&set));
    assert_eq!(set.len(), 1);
    let err: JoinError = unirun_core::block_on(task).unwrap_err();
    assert_eq!(err.panic_message(), Some("inside a foreign task"));
    assert!(err
        .panic_location()
        .unwrap()
        .file()
        .ends_with("foreign_join.rs"));
    assert!(set.is_empty());

    let closed = Arc::new(TaskSet::new());
    closed.close();
    let task = TaskFuture::new(async { 1 }, Some(&closed));
    assert!(unirun_core::block_on(task).unwrap_err().is_cancelled());
}

/// A one-word handle, stored inline in the `JoinHandle`.
struct Small(Arc<AtomicUsize>);

impl ForeignJoin<u32> for Small {
    fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u32, JoinError>> {
        Poll::Ready(Ok(self.0.load(Ordering::SeqCst) as u32))
    }

    fn is_finished(&self) -> bool {
        true
    }

    fn abort(&mut self) {
        self.0.fetch_add(100, Ordering::SeqCst);
    }
}

#[test]
fn small_handles_are_stored_inline_and_dropped_once() {
    let count = Arc::new(AtomicUsize::new(3));
    let handle = JoinHandle::from_foreign(Small(Arc::clone(&count)));
    assert_eq!(Arc::strong_count(&count), 2);
    let moved = vec![handle];
    let handle = moved.into_iter().next().unwrap();
    assert_eq!(handle.join().unwrap(), 3);
    assert_eq!(Arc::strong_count(&count), 1);

    let dropped = JoinHandle::from_foreign(Small(Arc::clone(&count)));
    drop(dropped);
    assert_eq!(Arc::strong_count(&count), 1);
}

#[test]
fn catch_panic_keeps_message_and_location_and_adds_no_size() {
    let future = async { 1u64 };
    assert_eq!(
        std::mem::size_of_val(&unirun_core::CatchPanic::new(async { 1u64 })),
        std::mem::size_of_val(&future)
    );
    let err = unirun_core::block_on(unirun_core::CatchPanic::new(async {
        panic!("caught {}", std::hint::black_box(3))
    }))
    .unwrap_err();
    assert_eq!(err.panic_message(), Some("caught 3"));
    assert!(err
        .panic_location()
        .unwrap()
        .file()
        .ends_with("foreign_join.rs"));
}

/// A foreign handle that writes through `&self` in `is_finished` (it counts
/// its checks in a `Cell`), stored inline in unirun's handle: asked many
/// times before and after its task finished, from `is_finished`, `abort`
/// and `Debug`. Each write must go through a pointer that may write (the
/// storage is plain `MaybeUninit`); this runs clean under AddressSanitizer
/// (`.ci/run`), and the count proves every check reached the handle.
#[test]
fn is_finished_on_a_foreign_handle_with_interior_mutability_reaches_it_every_time() {
    use std::cell::Cell;

    struct Counting {
        done: Arc<std::sync::atomic::AtomicBool>,
        checks: Cell<u32>,
    }

    impl ForeignJoin<u32> for Counting {
        fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u32, JoinError>> {
            if self.done.load(Ordering::SeqCst) {
                Poll::Ready(Ok(self.checks.get()))
            } else {
                Poll::Pending
            }
        }

        fn is_finished(&self) -> bool {
            self.checks.set(self.checks.get() + 1);
            self.done.load(Ordering::SeqCst)
        }

        fn abort(&mut self) {}
    }

    const _FITS_INLINE: () = assert!(std::mem::size_of::<Counting>() <= 16);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = JoinHandle::from_foreign(Counting {
        done: done.clone(),
        checks: Cell::new(0),
    });
    for _ in 0..1_000 {
        assert!(!handle.is_finished());
    }
    let _ = format!("{handle:?}"); // one more check
    done.store(true, Ordering::SeqCst);
    for _ in 0..1_000 {
        assert!(handle.is_finished());
    }
    handle.abort(); // finished: only checked, not aborted
    assert_eq!(handle.join().unwrap(), 2_002);
}

/// A foreign handle whose `is_finished` and `abort` ask the unirun handle
/// that holds it (as a backend's handle might, through a shared
/// reference), noting each answer. unirun runs them with its lock
/// released, so the nested calls return (`false`: the outer call is in
/// progress) instead of spinning on that lock forever.
#[test]
fn a_foreign_handle_may_ask_its_own_join_handle_from_is_finished_and_abort() {
    use std::sync::{Mutex, OnceLock, Weak};

    type Outer = OnceLock<Weak<JoinHandle<u32>>>;

    struct Reentrant {
        outer: Arc<Outer>,
        done: bool,
        /// What each nested `is_finished` on the outer handle answered.
        nested: Arc<Mutex<Vec<bool>>>,
    }

    impl Reentrant {
        fn ask_outer(&self) {
            if let Some(outer) = self.outer.get().and_then(Weak::upgrade) {
                let answer = outer.is_finished();
                self.nested.lock().unwrap().push(answer);
            }
        }
    }

    impl ForeignJoin<u32> for Reentrant {
        fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u32, JoinError>> {
            if self.done {
                Poll::Ready(Ok(3))
            } else {
                Poll::Pending
            }
        }

        fn is_finished(&self) -> bool {
            self.ask_outer();
            self.done
        }

        fn abort(&mut self) {
            self.ask_outer();
        }
    }

    watchdog("a foreign handle asking its own join handle", || {
        for done in [false, true] {
            let outer = Arc::new(Outer::new());
            let nested = Arc::new(Mutex::new(Vec::new()));
            let handle = Arc::new(JoinHandle::from_foreign(Reentrant {
                outer: outer.clone(),
                done,
                nested: nested.clone(),
            }));
            outer.set(Arc::downgrade(&handle)).unwrap();

            assert_eq!(handle.is_finished(), done);
            assert_eq!(format!("{handle:?}").contains("true"), done);
            handle.abort();
            // Each call above asked the foreign handle once, and its
            // nested call answered "not finished"; `abort` of an unfinished
            // task asked it twice (`is_finished`, then `abort`).
            let expected = if done { 3 } else { 4 };
            assert_eq!(*nested.lock().unwrap(), vec![false; expected]);

            let handle = Arc::try_unwrap(handle).unwrap_or_else(|_| panic!("still shared"));
            match unirun_core::block_on(handle) {
                Ok(3) if done => {}
                Err(err) if !done => assert!(err.is_cancelled()),
                other => panic!("done: {done}: {other:?}"),
            }
        }
    });
}

/// An `abort` made while another thread's `is_finished` is asking the
/// foreign handle (unlocked) is not lost: it returns at once (it does not
/// wait for the foreign code, which is blocked until the test lets it go,
/// after `abort` returned), and the asking call aborts the task afterwards.
#[test]
fn an_abort_during_another_threads_is_finished_still_aborts_the_foreign_task() {
    use std::sync::mpsc;

    struct Blocking {
        entered: mpsc::Sender<()>,
        release: std::sync::Mutex<mpsc::Receiver<()>>,
        aborted: Arc<AtomicUsize>,
    }

    impl ForeignJoin<u32> for Blocking {
        fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u32, JoinError>> {
            Poll::Pending
        }

        fn is_finished(&self) -> bool {
            self.entered.send(()).unwrap();
            // Ends: the test sends once `abort` returned (or the sender is
            // dropped, which also ends the wait).
            let _ = self.release.lock().unwrap().recv();
            false
        }

        fn abort(&mut self) {
            self.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }

    watchdog("an abort during another thread's is_finished", || {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let aborted = Arc::new(AtomicUsize::new(0));
        let handle = Arc::new(JoinHandle::from_foreign(Blocking {
            entered: entered_tx,
            release: std::sync::Mutex::new(release_rx),
            aborted: aborted.clone(),
        }));
        let asking = handle.clone();
        let asker = std::thread::spawn(move || asking.is_finished());
        entered.recv().unwrap();
        handle.abort(); // returns while the foreign `is_finished` is blocked
        assert_eq!(aborted.load(Ordering::SeqCst), 0, "aborted under the asker");
        release.send(()).unwrap();
        assert!(!asker.join().unwrap());
        assert_eq!(aborted.load(Ordering::SeqCst), 1, "the abort was lost");
        assert!(handle.is_finished());
        let handle = Arc::try_unwrap(handle).unwrap_or_else(|_| panic!("still shared"));
        assert!(unirun_core::block_on(handle).unwrap_err().is_cancelled());
    });
}
