//! The run queues: a bounded per-worker [`Local`] queue that other workers can
//! steal half of, and the global [`Injector`] for work from outside the pool.
//!
//! The local queue is a ring buffer with one producer (its worker) and many
//! consumers (its worker and stealers). `head` packs two 16-bit positions:
//! `real`, the next slot to pop, and `steal`, the first slot still being copied
//! out by a stealer. When no steal is in progress the two are equal. A stealer
//! claims a batch by moving `real` forward with a CAS, copies the batch, then
//! moves `steal` up to `real`. The owner never writes a slot between `steal`
//! and `tail`, so a claimed batch stays intact while it is copied.
//!
//! Positions are `u16` and wrap; the capacity divides 2^16, so `tail - steal`
//! is always the number of occupied slots.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use concurrent_queue::{ConcurrentQueue, PushError};

use crate::sync::{Arc, AtomicU16, AtomicU32, Ordering, UnsafeCell};
use crate::task::Runnable;

/// Slots per local queue (tokio and Go use 256; loom gets a tiny one).
#[cfg(not(loom))]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;
#[cfg(loom)]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 4;

const MASK: usize = LOCAL_QUEUE_CAPACITY - 1;

struct Inner {
    /// `steal` in the high 16 bits, `real` in the low 16 bits (see module docs).
    head: AtomicU32,
    /// Next slot the owner writes. Only the owner stores to it.
    tail: AtomicU16,
    /// Slots in `real..tail` hold initialized runnables; slots in
    /// `steal..real` are being copied out by the stealer that claimed them.
    buffer: Box<[UnsafeCell<MaybeUninit<Runnable>>]>,
}

// SAFETY: slots are only read or written by the thread that claimed them
// through `head`/`tail` (see the invariants on the fields), and a `Runnable`
// is `Send`, so sharing the buffer between the owner and stealers is sound.
unsafe impl Sync for Inner {}
// SAFETY: as above; `Inner` owns `Runnable`s, which are `Send`.
unsafe impl Send for Inner {}

/// The owner's end of a local queue: pushes and pops. `!Sync`, `Send`.
pub(crate) struct Local {
    inner: Arc<Inner>,
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

/// Another worker's end of a local queue: steals half of it.
#[derive(Clone)]
pub(crate) struct Stealer {
    inner: Arc<Inner>,
}

fn pack(steal: u16, real: u16) -> u32 {
    (u32::from(steal) << 16) | u32::from(real)
}

fn unpack(head: u32) -> (u16, u16) {
    ((head >> 16) as u16, head as u16)
}

/// Creates a local queue and its stealer.
pub(crate) fn local() -> (Local, Stealer) {
    local_at(0)
}

/// Creates an empty local queue whose positions start at `start`, so a test
/// can cross the `u16` wrap-around after a few pushes.
pub(crate) fn local_at(start: u16) -> (Local, Stealer) {
    let buffer = (0..LOCAL_QUEUE_CAPACITY)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect::<Vec<_>>()
        .into_boxed_slice();
    let inner = Arc::new(Inner {
        head: AtomicU32::new(pack(start, start)),
        tail: AtomicU16::new(start),
        buffer,
    });
    (
        Local {
            inner: inner.clone(),
            _not_sync: PhantomData,
        },
        Stealer { inner },
    )
}

impl Inner {
    fn len(&self) -> usize {
        let (_, real) = unpack(self.head.load(Ordering::Acquire));
        let tail = self.tail.load(Ordering::Acquire);
        usize::from(tail.wrapping_sub(real))
    }

    /// Moves the runnable out of `slot`.
    ///
    /// # Safety
    ///
    /// The slot must hold an initialized runnable that the caller has claimed
    /// (by popping it, or by claiming a steal batch containing it), so no other
    /// thread reads or writes it until the caller releases the claim.
    unsafe fn take(&self, pos: u16) -> Runnable {
        self.buffer[usize::from(pos) & MASK].with(|slot| {
            // SAFETY: the caller claimed this initialized slot.
            unsafe { (*slot).assume_init_read() }
        })
    }

    /// Writes `runnable` into `slot`.
    ///
    /// # Safety
    ///
    /// The slot must be free (outside `steal..tail`) and owned by the caller,
    /// i.e. the caller is the owner writing at `tail`, or a stealer writing into
    /// its own queue's free region.
    unsafe fn put(&self, pos: u16, runnable: Runnable) {
        self.buffer[usize::from(pos) & MASK].with_mut(|slot| {
            // SAFETY: the caller owns this free slot.
            unsafe { (*slot).write(runnable) };
        });
    }
}

impl Local {
    /// Number of runnables in the queue, stealable ones included.
    #[cfg(all(test, loom))]
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    /// Room left before the queue overflows.
    pub(crate) fn remaining(&self) -> usize {
        let (steal, _) = unpack(self.inner.head.load(Ordering::Acquire));
        let tail = self.inner.tail.load(Ordering::Relaxed);
        LOCAL_QUEUE_CAPACITY - usize::from(tail.wrapping_sub(steal))
    }

    /// Pushes to the back; a full queue moves half of itself and `runnable` to
    /// `overflow`, so the push never fails and never blocks.
    pub(crate) fn push_back(&self, mut runnable: Runnable, overflow: &Injector) {
        let tail = loop {
            let head = self.inner.head.load(Ordering::Acquire);
            let (steal, real) = unpack(head);
            // Only this thread stores `tail`.
            let tail = self.inner.tail.load(Ordering::Relaxed);
            if usize::from(tail.wrapping_sub(steal)) < LOCAL_QUEUE_CAPACITY {
                break tail;
            }
            if steal != real {
                // A stealer is draining us right now: the queue will have room
                // soon, but not for this runnable.
                overflow.push(runnable);
                return;
            }
            match self.push_overflow(runnable, real, tail, overflow) {
                Ok(()) => return,
                // A stealer got in between; there may be room now.
                Err(back) => runnable = back,
            }
        };
        // SAFETY: `tail - steal < capacity`, so the slot at `tail` is free and
        // only the owner writes at `tail`.
        unsafe { self.inner.put(tail, runnable) };
        self.inner
            .tail
            .store(tail.wrapping_add(1), Ordering::Release);
    }

    /// Moves the older half of a full queue plus `runnable` to the injector.
    fn push_overflow(
        &self,
        runnable: Runnable,
        head: u16,
        tail: u16,
        overflow: &Injector,
    ) -> Result<(), Runnable> {
        const HALF: u16 = (LOCAL_QUEUE_CAPACITY / 2) as u16;
        debug_assert_eq!(usize::from(tail.wrapping_sub(head)), LOCAL_QUEUE_CAPACITY);
        let claimed = pack(head.wrapping_add(HALF), head.wrapping_add(HALF));
        if self
            .inner
            .head
            .compare_exchange(
                pack(head, head),
                claimed,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(runnable);
        }
        for i in 0..HALF {
            // SAFETY: the CAS above claimed `head..head + HALF` for this thread.
            overflow.push(unsafe { self.inner.take(head.wrapping_add(i)) });
        }
        overflow.push(runnable);
        Ok(())
    }

    /// Pops from the front.
    pub(crate) fn pop(&self) -> Option<Runnable> {
        let mut head = self.inner.head.load(Ordering::Acquire);
        let pos = loop {
            let (steal, real) = unpack(head);
            let tail = self.inner.tail.load(Ordering::Relaxed);
            if real == tail {
                return None;
            }
            let next_real = real.wrapping_add(1);
            // While a steal is in progress only `real` moves; otherwise both.
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                pack(steal, next_real)
            };
            match self
                .inner
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break real,
                Err(actual) => head = actual,
            }
        };
        // SAFETY: the CAS moved `real` past `pos`, claiming that slot.
        Some(unsafe { self.inner.take(pos) })
    }
}

impl Stealer {
    /// Number of runnables in the queue (a snapshot, for metrics).
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether there is anything to steal.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Steals half of this queue into `dst` and returns one of the stolen
    /// runnables to run right away.
    pub(crate) fn steal_into(&self, dst: &Local) -> Option<Runnable> {
        let dst_tail = dst.inner.tail.load(Ordering::Relaxed);
        // Only steal when `dst` has room for half a queue.
        if dst.remaining() < LOCAL_QUEUE_CAPACITY / 2 {
            return None;
        }
        let n = self.steal_batch(dst, dst_tail);
        if n == 0 {
            return None;
        }
        let last = dst_tail.wrapping_add(n - 1);
        // SAFETY: `steal_batch` wrote `n` runnables at `dst_tail..dst_tail + n`,
        // which are not published yet, so this thread alone owns them.
        let ret = unsafe { dst.inner.take(last) };
        if n > 1 {
            dst.inner.tail.store(last, Ordering::Release);
        }
        Some(ret)
    }

    /// Claims half of this queue and copies it to `dst` starting at `dst_tail`
    /// (without publishing it); returns how many were copied.
    fn steal_batch(&self, dst: &Local, dst_tail: u16) -> u16 {
        let Some((first, n)) = self.claim(|available| available - available / 2) else {
            return 0;
        };
        for i in 0..n {
            // SAFETY: `claim` claimed `first..first + n` of the source; the
            // destination slots from `dst_tail` are free (checked by the caller)
            // and written only by `dst`'s owner, which is this thread.
            unsafe {
                let runnable = self.inner.take(first.wrapping_add(i));
                dst.inner.put(dst_tail.wrapping_add(i), runnable);
            }
        }
        self.release(first, n);
        n
    }

    /// Takes everything queued right now (for shutdown, which cancels it).
    ///
    /// A claim another stealer holds is waited out, not skipped: that
    /// stealer moves its batch to its own queue, and the rest of this one
    /// is taken here (see `Shared::stop_seen_after_steal` for the batch).
    /// The wait ends: a claim is held only while its stealer copies at most
    /// half a queue of runnables (moves, no user code, no lock), and a
    /// stealer that finds a claim held gives up instead of waiting, so no
    /// claim waits on another. In a pool inherited through a fork
    /// (`inherited`) the claim's holder may be a thread that `fork` did not
    /// copy: there the queue is left as it is. That needs the child to know
    /// it is one: the threads backend marks every child, whoever forked it,
    /// through a `pthread_atfork` handler; a user of a bare core `Pool` that
    /// forks must call [`crate::mark_forked_child`] in the child.
    pub(crate) fn steal_all(&self, inherited: bool) -> Vec<Runnable> {
        let mut spins = 0u32;
        let (first, n) = loop {
            let (steal, real) = unpack(self.inner.head.load(Ordering::Acquire));
            if steal != real {
                if inherited {
                    return Vec::new();
                }
                back_off(&mut spins);
                continue;
            }
            match self.claim(|available| available) {
                Some(claimed) => break claimed,
                // Empty, or another stealer claimed in between: look again.
                None if self.is_empty() => return Vec::new(),
                None => {}
            }
        };
        let taken = (0..n)
            // SAFETY: `claim` claimed `first..first + n` for this thread.
            .map(|i| unsafe { self.inner.take(first.wrapping_add(i)) })
            .collect();
        self.release(first, n);
        taken
    }

    /// Claims `how_many(available)` runnables from the front by moving `real`
    /// forward; `None` when there is nothing to claim or another stealer
    /// holds a claim. The caller must [`release`](Self::release) the claim.
    fn claim(&self, how_many: impl Fn(u16) -> u16) -> Option<(u16, u16)> {
        let mut prev = self.inner.head.load(Ordering::Acquire);
        loop {
            let (steal, real) = unpack(prev);
            if steal != real {
                // Someone else is stealing from this queue.
                return None;
            }
            let tail = self.inner.tail.load(Ordering::Acquire);
            let n = how_many(tail.wrapping_sub(real));
            if n == 0 {
                return None;
            }
            let next = pack(steal, real.wrapping_add(n));
            match self
                .inner
                .head
                .compare_exchange(prev, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some((real, n)),
                Err(actual) => prev = actual,
            }
        }
    }

    /// Ends the claim of `first..first + n`: moves `steal` up to wherever
    /// `real` is now, so the owner may reuse those slots.
    fn release(&self, first: u16, n: u16) {
        let mut prev = pack(first, first.wrapping_add(n));
        loop {
            let (_, real) = unpack(prev);
            match self.inner.head.compare_exchange(
                prev,
                pack(real, real),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => prev = actual,
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // No owner or stealer is left: what remains in `real..tail` is ours.
        let (_, real) = unpack(self.head.load(Ordering::Relaxed));
        let tail = self.tail.load(Ordering::Relaxed);
        let mut pos = real;
        while pos != tail {
            // SAFETY: `real..tail` holds initialized runnables and nobody else
            // can reach them any more. Dropping them cancels their tasks.
            drop(unsafe { self.take(pos) });
            pos = pos.wrapping_add(1);
        }
    }
}

/// One turn of waiting for another thread's claim to end: a spin, and now
/// and then (with `std`) a yield, since the holder may have lost its CPU.
fn back_off(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    #[cfg(all(feature = "std", not(loom)))]
    if *spins % 64 == 0 {
        std::thread::yield_now();
        return;
    }
    crate::sync::spin_loop();
}

/// The global queue for work scheduled from outside the pool and for a local
/// queue's overflow. Lock-free, unbounded, closed at shutdown.
pub(crate) struct Injector {
    queue: ConcurrentQueue<Runnable>,
}

impl Injector {
    pub(crate) fn new() -> Self {
        Self {
            queue: ConcurrentQueue::unbounded(),
        }
    }

    /// Pushes a runnable; after [`close`](Self::close) it is dropped, which
    /// cancels its task.
    pub(crate) fn push(&self, runnable: Runnable) {
        if let Err(PushError::Closed(runnable) | PushError::Full(runnable)) =
            self.queue.push(runnable)
        {
            crate::task::cancel(runnable);
        }
    }

    pub(crate) fn pop(&self) -> Option<Runnable> {
        self.queue.pop().ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Number of queued runnables (a snapshot, for metrics).
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Refuses further pushes; returns what was queued so the caller can drop
    /// it outside any lock.
    pub(crate) fn close(&self) -> Vec<Runnable> {
        self.queue.close();
        let mut drained = Vec::new();
        while let Ok(runnable) = self.queue.pop() {
            drained.push(runnable);
        }
        drained
    }
}
