//! [`map_indexed`]: a parallel map over `0..len` by recursive [`join`]s,
//! splitting adaptively and writing each result straight into its slot of
//! the output.
//!
//! **Splitting.** A range starts with a budget of `workers` splits; each
//! split halves the budget, so without steals the work ends up in about
//! `2 * workers` chunks and a chunk costs one join. A half that was stolen
//! (or ran on another thread than its parent) resets its budget to at least
//! `workers`: a thief was hungry, so its piece is split again for the others.
//! Fine items thus cost no synchronization each, and an uneven load still
//! spreads.
//!
//! **Panics.** Every item runs, whatever the others do: a chunk catches an
//! item's panic, drops the results of the items after it as they come, and
//! resumes its first panic once its last item ran; a join finishes both
//! halves and resumes the lower half's panic first. So the panic that reaches
//! the caller is the one of the lowest index that panicked, after every item
//! ran, and the results made so far are dropped. Catching costs nothing
//! while nothing panics.

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::mem;
use std::panic::{self, AssertUnwindSafe};

use super::join_context;

/// Maps `f` over `0..len` on the calling worker's pool (sequentially off a
/// worker; [`Pool::in_worker`](crate::Pool::in_worker) gets there) and
/// returns the results in index order.
///
/// # Panics
///
/// With the panic of the lowest index whose call panicked, once every item
/// ran (see the module docs).
///
/// # Examples
///
/// ```
/// let squares = unirun_core::map_indexed(5, |i| i * i);
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
///
/// let caught = std::panic::catch_unwind(|| {
///     unirun_core::map_indexed(8, |i| if i % 3 == 2 { panic!("item {i}") } else { i })
/// });
/// let payload = caught.unwrap_err();
/// assert_eq!(payload.downcast_ref::<String>().unwrap(), "item 2");
/// ```
pub fn map_indexed<R, F>(len: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    let workers = super::with_worker(|cx| cx.map_or(1, |cx| cx.shared().workers));
    let mut out: Vec<R> = Vec::with_capacity(len);
    let slots = Slots(out.as_mut_ptr());
    let filled = split(&f, slots, 0, len, Splitter::new(workers), false);
    debug_assert_eq!((filled.start, filled.len), (0, len));
    mem::forget(filled);
    // SAFETY: every slot in `0..len` was written exactly once (the `Filled`
    // for the whole range says so) and ownership passed to `out` here.
    unsafe { out.set_len(len) };
    out
}

/// The output buffer, shared by the chunks: each writes only its own range.
struct Slots<R>(*mut R);

impl<R> Clone for Slots<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Slots<R> {}

// SAFETY: chunks write disjoint ranges of the buffer, and `R: Send`.
unsafe impl<R: Send> Send for Slots<R> {}
// SAFETY: as above.
unsafe impl<R: Send> Sync for Slots<R> {}

/// An initialized range `start..start + len` of the output: dropping it drops
/// those results (a panic elsewhere unwinds through it).
struct Filled<R> {
    slots: Slots<R>,
    start: usize,
    len: usize,
    _owns: PhantomData<R>,
}

impl<R> Filled<R> {
    /// Joins two adjacent ranges into one.
    fn merge(self, right: Filled<R>) -> Filled<R> {
        debug_assert_eq!(self.start + self.len, right.start);
        let merged = Filled {
            slots: self.slots,
            start: self.start,
            len: self.len + right.len,
            _owns: PhantomData,
        };
        mem::forget(self);
        mem::forget(right);
        merged
    }
}

impl<R> Drop for Filled<R> {
    fn drop(&mut self) {
        // SAFETY: `start..start + len` holds results written by this range's
        // chunks and owned by nobody else.
        unsafe {
            let first = self.slots.0.add(self.start);
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(first, self.len));
        }
    }
}

#[derive(Clone, Copy)]
struct Splitter {
    splits: usize,
    workers: usize,
}

impl Splitter {
    fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Splitter {
            splits: workers,
            workers,
        }
    }

    /// Whether to split a range of `len` items, updating the budget.
    fn try_split(&mut self, len: usize, migrated: bool) -> bool {
        if len < 2 {
            return false;
        }
        if migrated {
            self.splits = (self.splits / 2).max(self.workers);
            true
        } else if self.splits > 0 {
            self.splits /= 2;
            true
        } else {
            false
        }
    }
}

fn split<R, F>(
    f: &F,
    slots: Slots<R>,
    start: usize,
    len: usize,
    mut splitter: Splitter,
    migrated: bool,
) -> Filled<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    if splitter.try_split(len, migrated) {
        let half = len / 2;
        let (left, right) = join_context(
            move || split(f, slots, start, half, splitter, false),
            move |migrated| split(f, slots, start + half, len - half, splitter, migrated),
        );
        return left.merge(right);
    }
    let mut filled = Filled {
        slots,
        start,
        len: 0,
        _owns: PhantomData,
    };
    let end = start + len;
    let mut next = start;
    // One `catch_unwind` per run of items, not per item: after a panic at
    // `next` the loop resumes after it, dropping the results from then on.
    let mut first_panic = None;
    while next < end {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            while next < end {
                let value = f(next);
                if first_panic.is_none() {
                    // SAFETY: slot `next` belongs to this chunk and is
                    // written once.
                    unsafe { slots.0.add(next).write(value) };
                    filled.len += 1;
                }
                next += 1;
            }
        }));
        if let Err(payload) = caught {
            first_panic.get_or_insert(payload);
            next += 1;
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
    filled
}
