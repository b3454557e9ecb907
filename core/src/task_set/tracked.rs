//! [`Tracked`]: membership in a [`TaskSet`] for work that is not a task.

use alloc::sync::Arc;

use crate::member::Member;
use crate::stats::Outcome;
use crate::{JoinError, TaskSet};

/// One unit of work counted as a live member of a [`TaskSet`] without
/// being a task of its own: work that a thread runs in place (a
/// backend's call joined on the calling thread) but that its set must
/// still wait for and count.
///
/// From [`TaskSet::track`] until it [ends](Self::end) (or is dropped) it
/// counts in [`len`](TaskSet::len), so [`wait_empty`](TaskSet::wait_empty)
/// waits for it; its end is counted in [`counts`](TaskSet::counts) by its
/// outcome, as a task's would be. Closing the set cancels nothing by
/// itself (no task is polled): the work asks [`is_closed`](Self::is_closed)
/// before it starts, and whoever closes the set stops what runs.
/// Dropped without [`end`](Self::end), it counts as cancelled (as
/// panicked when dropped by a panic).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{JoinError, TaskSet};
///
/// let set = Arc::new(TaskSet::new());
/// let work = set.track();
/// assert_eq!(set.len(), 1);
/// assert!(!work.is_closed());
/// work.end(Ok::<u8, JoinError>(3).as_ref().map(|_| ()));
/// assert_eq!(set.len(), 0);
/// assert_eq!(set.counts().completed(), 1);
///
/// drop(set.track()); // given up before it ran
/// assert_eq!(set.counts().cancelled(), 1);
///
/// // Cancelled once the set closed: the close's, in its exact count.
/// let stopped = set.track();
/// set.close();
/// stopped.end(Err(&JoinError::cancelled()));
/// assert_eq!(set.unfinished_since_close(), 1);
/// ```
#[derive(Debug)]
pub struct Tracked {
    member: Member,
}

impl TaskSet {
    /// Counts one unit of work that is not a task as a live member of this
    /// set until the returned [`Tracked`] ends (see there).
    ///
    /// # Examples
    ///
    /// ```
    /// let set = std::sync::Arc::new(unirun_core::TaskSet::new());
    /// let work = set.track();
    /// assert_eq!(set.len(), 1);
    /// drop(work);
    /// assert!(set.is_empty());
    /// ```
    pub fn track(self: &Arc<Self>) -> Tracked {
        Tracked {
            member: Member::join(self, false),
        }
    }
}

impl Tracked {
    /// Whether its set was closed: work that has not started should not.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = std::sync::Arc::new(unirun_core::TaskSet::new());
    /// let work = set.track();
    /// set.close();
    /// assert!(work.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.member.set().is_some_and(TaskSet::is_closed)
    }

    /// The work ended with `outcome`: counted as completed for `Ok`, else
    /// as a task that failed with that error would be (cancelled for a
    /// cancellation or a timeout, with the panics otherwise); it leaves
    /// the set.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// let set = std::sync::Arc::new(unirun_core::TaskSet::new());
    /// set.track().end(Err(&JoinError::timed_out()));
    /// assert_eq!(set.counts().cancelled(), 1);
    /// ```
    pub fn end(mut self, outcome: Result<(), &JoinError>) {
        let outcome = match outcome {
            Ok(()) => Outcome::Completed,
            Err(err) => Outcome::of_error(err),
        };
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(set) = self.member.set() {
            // Counted before leaving (see `stats`).
            set.stats.ended(outcome);
            // Cancelled after the close (a shutdown stopped it, or it saw
            // the set closed before it started): the close's, as a task's
            // would be (see `TaskSet::unfinished_since_close`).
            if outcome == Outcome::Cancelled && set.is_closed() {
                self.member.close_out();
            }
        }
        self.member.leave();
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        let outcome = if std::thread::panicking() {
            Outcome::Panicked
        } else {
            Outcome::Cancelled
        };
        #[cfg(not(feature = "std"))]
        let outcome = Outcome::Cancelled;
        // After `end` the member has no set: nothing counted twice.
        self.finish(outcome);
    }
}
