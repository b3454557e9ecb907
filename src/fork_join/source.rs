//! The inputs [`par_map`](crate::par_map) splits by index: what each
//! [`ParallelInput`](super::ParallelInput) becomes. Private: the traits are
//! `pub` only so that the public, sealed `ParallelInput` can name them.

use std::ops::{Range, RangeInclusive};

/// An input the map can split: the indexable [`Source`] it converts into.
pub trait IntoSource {
    /// The items the map's closure is called with.
    type Item;
    /// The indexable form the map splits.
    type Source: Source<Item = Self::Item>;
    /// Converts into the indexable form.
    fn into_source(self) -> Self::Source;
}

/// An indexable input shared by the map's chunks.
pub trait Source: Sync {
    /// What `take` returns.
    type Item;
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Item `i`.
    ///
    /// # Safety
    ///
    /// `i < len()`, and each `i` is taken at most once.
    unsafe fn take(&self, i: usize) -> Self::Item;
}

/// A slice's items, by reference.
pub struct SliceSource<'a, T>(&'a [T]);

impl<'a, T: Sync> Source for SliceSource<'a, T> {
    type Item = &'a T;
    fn len(&self) -> usize {
        self.0.len()
    }
    unsafe fn take(&self, i: usize) -> &'a T {
        // SAFETY: `i < len()`, the caller's contract.
        unsafe { self.0.get_unchecked(i) }
    }
}

impl<'a, T: Sync> IntoSource for &'a [T] {
    type Item = &'a T;
    type Source = SliceSource<'a, T>;
    fn into_source(self) -> Self::Source {
        SliceSource(self)
    }
}

impl<'a, T: Sync> IntoSource for &'a Vec<T> {
    type Item = &'a T;
    type Source = SliceSource<'a, T>;
    fn into_source(self) -> Self::Source {
        SliceSource(self)
    }
}

impl<'a, T: Sync, const N: usize> IntoSource for &'a [T; N] {
    type Item = &'a T;
    type Source = SliceSource<'a, T>;
    fn into_source(self) -> Self::Source {
        SliceSource(self)
    }
}

/// A `Vec`'s items, moved out one by one (every index is taken: a map runs
/// every item even when some panic).
pub struct VecSource<T> {
    /// Its length is 0: the items in `0..len` are owned by the map until
    /// taken; dropping this frees the buffer only.
    buf: Vec<T>,
    len: usize,
}

// SAFETY: items are moved out by index, each once, on any thread: sharing
// the source moves `T`s across threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for VecSource<T> {}

impl<T: Send> Source for VecSource<T> {
    type Item = T;
    fn len(&self) -> usize {
        self.len
    }
    unsafe fn take(&self, i: usize) -> T {
        debug_assert!(i < self.len);
        // SAFETY: `i < len` is initialized and, by the caller's contract,
        // read once; the `Vec`'s length is 0 so it never drops it again.
        unsafe { self.buf.as_ptr().add(i).read() }
    }
}

impl<T: Send> IntoSource for Vec<T> {
    type Item = T;
    type Source = VecSource<T>;
    fn into_source(mut self) -> Self::Source {
        let len = self.len();
        // SAFETY: shrinking the length to 0 hands the items to the source
        // (see `VecSource::buf`); nothing is read or dropped here.
        unsafe { self.set_len(0) };
        VecSource { buf: self, len }
    }
}

/// A range of integers, item by value.
pub struct RangeSource<T> {
    start: T,
    len: usize,
}

macro_rules! ranges {
    ($($t:ty),*) => {$(
        impl Source for RangeSource<$t> {
            type Item = $t;
            fn len(&self) -> usize {
                self.len
            }
            unsafe fn take(&self, i: usize) -> $t {
                // `i < len`: the sum (modulo the type's width) is inside
                // the range.
                self.start.wrapping_add(i as $t)
            }
        }

        impl IntoSource for Range<$t> {
            type Item = $t;
            type Source = RangeSource<$t>;
            fn into_source(self) -> Self::Source {
                let len = if self.end > self.start {
                    usize::try_from(self.end.abs_diff(self.start))
                        .expect("unirun::par_map: a range longer than usize::MAX items")
                } else {
                    0
                };
                RangeSource { start: self.start, len }
            }
        }

        impl IntoSource for RangeInclusive<$t> {
            type Item = $t;
            type Source = RangeSource<$t>;
            fn into_source(self) -> Self::Source {
                let (start, end) = self.into_inner();
                let len = if end >= start {
                    usize::try_from(end.abs_diff(start))
                        .ok()
                        .and_then(|n| n.checked_add(1))
                        .expect("unirun::par_map: a range longer than usize::MAX items")
                } else {
                    0
                };
                RangeSource { start, len }
            }
        }
    )*};
}

ranges!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
