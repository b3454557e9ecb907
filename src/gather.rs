//! [`gather`]: await many futures, keep their order.

use alloc::vec::Vec;
use core::future::Future;
use core::mem;
use core::pin::Pin;
use core::task::{Context, Poll};

/// Awaits every future of `futures` concurrently and returns their outputs in
/// the order the futures came in (`asyncio.gather`, `join_all`).
///
/// The futures are polled on the task that awaits `gather`; to run them in
/// parallel, pass [`JoinHandle`](crate::JoinHandle)s of spawned tasks, whose
/// outputs are `Result<T, JoinError>`.
///
/// # Examples
///
/// ```
/// let handles = (1..=3).map(|i| unirun::to_thread(move || i * 10));
/// let results = unirun::block_on(unirun::gather(handles));
/// let values: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
/// assert_eq!(values, [10, 20, 30]);
/// ```
pub fn gather<I>(futures: I) -> Gather<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    let slots: Vec<Slot<I::Item>> = futures.into_iter().map(Slot::Pending).collect();
    Gather {
        remaining: slots.len(),
        slots: slots.into_boxed_slice().into(),
    }
}

enum Slot<F: Future> {
    Pending(F),
    Done(F::Output),
    Taken,
}

/// Future returned by [`gather`].
#[must_use = "futures do nothing unless polled"]
pub struct Gather<F: Future> {
    /// Pinned in place on the heap: the futures never move once polled.
    slots: Pin<alloc::boxed::Box<[Slot<F>]>>,
    remaining: usize,
}

impl<F: Future> Future for Gather<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // SAFETY: we never move a slot's future out of the boxed slice: a
        // pending future is polled in place and replaced (dropped in place)
        // only when it completes.
        let slots = unsafe { this.slots.as_mut().get_unchecked_mut() };
        for slot in slots.iter_mut() {
            if let Slot::Pending(future) = slot {
                // SAFETY: the slice is heap-pinned (see above), so `future`
                // stays at this address until it is dropped.
                let future = unsafe { Pin::new_unchecked(future) };
                if let Poll::Ready(output) = future.poll(cx) {
                    *slot = Slot::Done(output);
                    this.remaining -= 1;
                }
            }
        }
        if this.remaining > 0 {
            return Poll::Pending;
        }
        let outputs = slots
            .iter_mut()
            .map(|slot| match mem::replace(slot, Slot::Taken) {
                Slot::Done(output) => output,
                _ => unreachable!("gather: every slot is done before outputs are taken"),
            })
            .collect();
        Poll::Ready(outputs)
    }
}

impl<F: Future> core::fmt::Debug for Gather<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gather")
            .field("len", &self.slots.len())
            .field("remaining", &self.remaining)
            .finish()
    }
}
