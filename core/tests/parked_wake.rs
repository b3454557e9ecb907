//! A park that drives a reactor runs the reactor's wakers on the parked
//! worker's own thread: the tasks they wake are queued on that worker and
//! run there when its park ends (no hop to another worker).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use unirun_core::{Park, Pool, Unpark};

/// A fake reactor for one worker: wakers handed to it are called on the
/// parked worker's thread, as a reactor's dispatch would.
#[derive(Default)]
struct Reactor {
    state: Mutex<ReactorState>,
    changed: Condvar,
}

#[derive(Default)]
struct ReactorState {
    notified: bool,
    ready: Vec<Waker>,
}

struct ReactorPark(Arc<Reactor>);

impl Park for ReactorPark {
    fn park(&self) {
        let mut state = self.0.state.lock().unwrap();
        loop {
            if std::mem::take(&mut state.notified) {
                return;
            }
            if let Some(waker) = state.ready.pop() {
                drop(state);
                waker.wake();
                state = self.0.state.lock().unwrap();
                continue;
            }
            state = self.0.changed.wait(state).unwrap();
        }
    }
}

impl Unpark for Reactor {
    fn unpark(&self) {
        self.state.lock().unwrap().notified = true;
        self.changed.notify_all();
    }
}

/// Pending once (handing its waker to the reactor), then done: returns
/// the name of the thread that polled it the second time.
struct WokenByReactor(Option<Arc<Reactor>>);

impl Future for WokenByReactor {
    type Output = String;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        match self.0.take() {
            Some(reactor) => {
                reactor.state.lock().unwrap().ready.push(cx.waker().clone());
                reactor.changed.notify_all();
                Poll::Pending
            }
            None => Poll::Ready(std::thread::current().name().unwrap().to_string()),
        }
    }
}

#[test]
fn a_wake_inside_a_park_runs_on_the_parked_worker() {
    let reactor = Arc::new(Reactor::default());
    let (plain, plain_unparker) = unirun_core::park::pair();
    let parkers: Vec<(Box<dyn Park + Send>, Arc<dyn Unpark>)> = vec![
        (Box::new(ReactorPark(reactor.clone())), reactor.clone()),
        (Box::new(plain), Arc::new(plain_unparker)),
    ];
    let (pool, workers) = Pool::new(parkers);
    let threads: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            std::thread::Builder::new()
                .name(format!("w{}", worker.index()))
                .spawn(move || worker.run())
                .unwrap()
        })
        .collect();
    for _ in 0..50 {
        let task = pool.spawn(WokenByReactor(Some(reactor.clone())));
        assert_eq!(
            task.join().unwrap(),
            "w0",
            "the reactor's worker runs what it woke"
        );
    }
    pool.shutdown();
    threads.into_iter().for_each(|t| t.join().unwrap());
}
