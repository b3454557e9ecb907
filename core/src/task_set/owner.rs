//! [`Owner`]: what holds a [`TaskSet`](super::TaskSet), type-erased, so its
//! members keep the owner alive instead of the set (see
//! [`TaskSet::owned_by`](super::TaskSet::owned_by)).

use alloc::sync::{Arc, Weak};
use core::any::TypeId;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;

/// The owner of a set: a weak reference to the `Arc<T>` that holds the set,
/// and the functions that know `T`.
///
/// Invariant: `weak` came from `Weak::<T>::into_raw` for the `T` that
/// `vtable` was made for; the set drops it (once) when it is dropped.
pub(crate) struct Owner {
    pub(crate) weak: *const (),
    /// `T`'s, compared on every poll of a scope's task (a call through the
    /// vtable would cost more). Read only by `with_polled_owner` (`std`).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    type_id: TypeId,
    vtable: &'static OwnerVtable,
}

struct OwnerVtable {
    /// Takes a strong reference if the owner still lives.
    upgrade: unsafe fn(*const ()) -> bool,
    /// Gives back a strong reference that `upgrade` took.
    release: unsafe fn(*const ()),
    /// Drops the set's weak reference.
    drop_weak: unsafe fn(*const ()),
}

struct OwnerVtableOf<T>(PhantomData<T>);

impl<T: Send + Sync + 'static> OwnerVtableOf<T> {
    const VTABLE: OwnerVtable = OwnerVtable {
        upgrade: upgrade::<T>,
        release: release::<T>,
        drop_weak: drop_weak::<T>,
    };
}

/// # Safety
///
/// `weak` came from `Weak::<T>::into_raw` and that weak reference is alive.
unsafe fn upgrade<T>(weak: *const ()) -> bool {
    // SAFETY: the caller guarantees `weak` is a live `Weak<T>`'s raw form;
    // `ManuallyDrop` leaves that reference to its owner.
    let weak = ManuallyDrop::new(unsafe { Weak::from_raw(weak.cast::<T>()) });
    match weak.upgrade() {
        Some(strong) => {
            // Kept as the member's reference; `release` gives it back.
            let _ = Arc::into_raw(strong);
            true
        }
        None => false,
    }
}

/// # Safety
///
/// The caller owns a strong reference that `upgrade::<T>(weak)` took.
unsafe fn release<T>(weak: *const ()) {
    // SAFETY: `Arc::into_raw` in `upgrade` returned this very pointer (a
    // weak and a strong reference to one allocation have the same raw
    // form), and the caller gives back the reference it owns.
    unsafe { drop(Arc::from_raw(weak.cast::<T>())) }
}

/// # Safety
///
/// `weak` came from `Weak::<T>::into_raw` and is dropped this once.
unsafe fn drop_weak<T>(weak: *const ()) {
    // SAFETY: as the caller guarantees.
    unsafe { drop(Weak::from_raw(weak.cast::<T>())) }
}

// SAFETY: `Owner` is a weak reference to a `T: Send + Sync` (see `new`)
// behind a raw pointer, plus static functions.
unsafe impl Send for Owner {}
// SAFETY: as for `Send`; `&Owner` only reads the two fields.
unsafe impl Sync for Owner {}

impl Owner {
    /// Takes over `owner`, the weak reference a set keeps to what holds it.
    pub(super) fn new<T: Send + Sync + 'static>(owner: Weak<T>) -> Owner {
        Owner {
            weak: Weak::into_raw(owner).cast(),
            type_id: TypeId::of::<T>(),
            vtable: &OwnerVtableOf::<T>::VTABLE,
        }
    }

    /// Takes a strong reference to the owner, if it still lives.
    pub(crate) fn retain(&self) -> bool {
        // SAFETY: by the invariant `weak` is the set's live weak reference.
        unsafe { (self.vtable.upgrade)(self.weak) }
    }

    /// What gives back a strong reference [`retain`](Self::retain) took,
    /// copied out of the owner: giving it back may drop the owner, and
    /// with it the set and this `Owner`.
    pub(crate) fn releaser(&self) -> Release {
        Release {
            release: self.vtable.release,
            weak: self.weak,
        }
    }

    /// The owner, if it is a `T`.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn get<T: 'static>(&self) -> Option<*const T> {
        (self.type_id == TypeId::of::<T>()).then_some(self.weak.cast::<T>())
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: by the invariant, the set's weak reference, dropped once.
        unsafe { (self.vtable.drop_weak)(self.weak) }
    }
}

/// See [`Owner::releaser`].
pub(crate) struct Release {
    release: unsafe fn(*const ()),
    weak: *const (),
}

impl Release {
    /// Gives the reference back.
    ///
    /// # Safety
    ///
    /// The caller owns a reference that [`Owner::retain`] took on the owner
    /// this came from, and gives it back this once.
    pub(crate) unsafe fn run(self) {
        // SAFETY: as the caller guarantees.
        unsafe { (self.release)(self.weak) }
    }
}
