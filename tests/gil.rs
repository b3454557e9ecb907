//! `ThreadMode::Gil` scopes nested in opposite orders on two threads.

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use unirun::{Flavor, Run, RuntimeConfig, ThreadMode};

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
    let (done_tx, done_rx) = mpsc::channel();
    let watched = std::thread::spawn(move || {
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
        done_tx.send(()).unwrap();
    });
    if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        panic!("two gil scopes nested in opposite orders deadlocked (ABBA)");
    }
    watched.join().unwrap();
}
