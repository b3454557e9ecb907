//! Views into unirun's timer driver for unirun's own tests (feature
//! `__test-hooks`, which `full` leaves out): not a supported API. Reached
//! as `unirun::time::test_hooks`.

use std::cmp::Reverse;
use std::time::Instant;

use super::{lock, nanos};
use crate::time::{Sleep, Timer};

/// Whether `sleep` holds an entry in the driver now (a dropped or
/// completed sleep holds none).
pub fn is_registered(sleep: &Sleep) -> bool {
    match &sleep.timer {
        Timer::Own(entry) => entry
            .key
            .is_some_and(|(_, id)| lock().wakers.contains_key(&id)),
        _ => false,
    }
}

/// How many entries the driver holds at `deadline`: one per registered
/// sleep with that deadline.
pub fn entries_at(deadline: Instant) -> usize {
    let at = nanos(deadline);
    let inner = lock();
    inner
        .queue
        .iter()
        .filter(|Reverse((when, id))| *when == at && inner.wakers.contains_key(id))
        .count()
}

/// How many keys the driver queues, live and stale (stale keys are
/// compacted away before they outnumber live ones by much).
pub fn queued() -> usize {
    lock().queue.len()
}

/// Whether the driver thread runs.
pub fn driver_running() -> bool {
    lock().thread.is_some()
}

/// Holds the driver's lock until the result drops (a forked child never
/// needs it).
pub fn hold_driver_lock() -> impl Sized {
    lock()
}
