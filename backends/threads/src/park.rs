//! The parker of a pool with a [`WorkerContext`]: an idle worker parks
//! inside the context ([`WorkerContext::park`], for example driving a
//! reactor), or, when the context declines, on a plain thread parker.
//!
//! # Protocol
//!
//! A wake-up sets `notified`, then wakes the waker the parked thread left
//! in `waker` (if it parks inside the context) and the thread parker (if it
//! parks on that). The parked side's future takes `notified`, or stores its
//! waker and takes `notified` once more: the waker slot's lock orders the
//! two, so either the waker is seen by the wake-up or the flag is seen by
//! the second look. No wake-up is lost; a stale one only makes a later park
//! return early, which [`Park`] allows. The loom model
//! `loom_reactor_park_token_loses_no_wakeup` in `unirun_core` checks this
//! protocol.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use unirun_core::park::{Parker, Unparker};
use unirun_core::{Park, Unpark};

use crate::WorkerContext;

/// A parker for one worker of a pool whose threads run inside `context`.
pub(crate) fn pair(context: Arc<dyn WorkerContext>) -> (Box<dyn Park + Send>, Arc<dyn Unpark>) {
    let (parker, token) = parts(context);
    (Box::new(parker), token)
}

fn parts(context: Arc<dyn WorkerContext>) -> (ContextParker, Arc<Token>) {
    let (thread, thread_unparker) = unirun_core::park::pair();
    let token = Arc::new(Token {
        notified: AtomicBool::new(false),
        waker: Mutex::new(None),
        thread: thread_unparker,
    });
    let parker = ContextParker {
        token: token.clone(),
        thread,
        context,
    };
    (parker, token)
}

/// The shared side: the wake-up flag and where the parked thread waits.
struct Token {
    notified: AtomicBool,
    /// The waker of the future the thread parks inside the context on.
    waker: Mutex<Option<Waker>>,
    thread: Unparker,
}

struct ContextParker {
    token: Arc<Token>,
    /// Used when the context declines to park the thread.
    thread: Parker,
    context: Arc<dyn WorkerContext>,
}

impl Park for ContextParker {
    fn park(&self) {
        if self.token.notified.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut woken = Woken(&self.token);
        let woken = Pin::<&mut Woken<'_>>::new(&mut woken);
        if self.context.park(woken) {
            // A stale waker would wake whoever drives the context next.
            *lock(&self.token.waker) = None;
        } else {
            self.thread.park();
            self.token.notified.store(false, Ordering::SeqCst);
        }
    }

    fn runs_foreign_code(&self) -> bool {
        self.context.park_runs_foreign_code()
    }
}

impl Unpark for Token {
    fn unpark(&self) {
        // A swap, not a store: the loom model (`unirun_core`'s
        // `loom_tests_reactor`) proves the protocol with it.
        self.notified.swap(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
        self.thread.unpark();
    }
}

/// Completes once the token is notified (and takes the notification).
struct Woken<'a>(&'a Token);

impl Future for Woken<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let token = self.0;
        if token.notified.swap(false, Ordering::SeqCst) {
            return Poll::Ready(());
        }
        {
            let mut slot = lock(&token.waker);
            match &mut *slot {
                Some(waker) => waker.clone_from(cx.waker()),
                None => *slot = Some(cx.waker().clone()),
            }
        }
        if token.notified.swap(false, Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Parks inside the context with a minimal executor: polls the future,
    /// and parks the thread between polls.
    struct Driving(AtomicUsize);

    impl WorkerContext for Driving {
        fn run(&self, body: &mut dyn FnMut()) {
            body()
        }

        fn as_any(&self) -> &dyn Any {
            self
        }

        fn park(&self, woken: Pin<&mut dyn Future<Output = ()>>) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            futures_lite_block_on(woken);
            true
        }
    }

    fn futures_lite_block_on(mut future: Pin<&mut dyn Future<Output = ()>>) {
        let (parker, unparker) = unirun_core::park::pair();
        let waker = Waker::from(Arc::new(unparker));
        let mut cx = Context::from_waker(&waker);
        while future.as_mut().poll(&mut cx).is_pending() {
            parker.park();
        }
    }

    #[test]
    fn an_unpark_from_another_thread_ends_a_park_inside_the_context() {
        let context = Arc::new(Driving(AtomicUsize::new(0)));
        let (parker, token) = parts(context.clone());
        let (started, running) = std::sync::mpsc::channel();
        let waker = std::thread::spawn(move || {
            running.recv().unwrap();
            token.unpark();
        });
        started.send(()).unwrap();
        parker.park();
        waker.join().unwrap();
        assert!(context.0.load(Ordering::SeqCst) <= 1);
        assert!(
            lock(&parker.token.waker).is_none(),
            "no stale waker is left"
        );
    }

    #[test]
    fn an_unpark_before_the_park_is_kept() {
        let context = Arc::new(Driving(AtomicUsize::new(0)));
        let (parker, token) = parts(context.clone());
        token.unpark();
        parker.park(); // returns at once, without entering the context
        assert_eq!(context.0.load(Ordering::SeqCst), 0);
    }

    /// Declines to park: the thread parker is used.
    struct Declining;

    impl WorkerContext for Declining {
        fn run(&self, body: &mut dyn FnMut()) {
            body()
        }

        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    #[test]
    fn a_context_that_declines_leaves_the_thread_parker() {
        let (parker, token) = parts(Arc::new(Declining));
        let waker = std::thread::spawn(move || token.unpark());
        parker.park();
        waker.join().unwrap();
        assert!(!parker.token.notified.load(Ordering::SeqCst));
    }
}
