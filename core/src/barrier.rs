//! An asymmetric memory barrier: a nearly free [`light`] side for the hot path
//! and an expensive [`heavy`] side for the cold path, which together order
//! memory like a `SeqCst` fence on both sides.
//!
//! The sleep protocol (see [`idle`](crate::idle)) has the store-buffering
//! shape: a worker pushing to its own queue stores `tail`, then loads the idle
//! state; the last searcher going to sleep updates the idle state, then loads
//! `tail`. At least one of the two loads must see the other side's store, which
//! the memory model only promises with a `SeqCst` fence on *both* sides. A
//! local push happens on every spawn and every wake-up on a worker; the last
//! searcher parks only when the pool runs dry. So the cost goes to the parking
//! side:
//!
//! - On Linux with `membarrier(2)`, the process registers once for
//!   `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (in [`init`], called by every pool's
//!   constructor before any of its workers can run). [`light`] is then a
//!   compiler fence, and [`heavy`] is a `SeqCst` fence plus the `membarrier`
//!   call, which makes every running thread of the process execute a full
//!   barrier: each light side's accesses are then ordered as if it had issued
//!   a real fence (the pairing used by user-space RCU).
//! - Anywhere else (another OS, a kernel without `membarrier`, a seccomp
//!   filter that refuses it, `no_std`), both sides are a `SeqCst` fence.
//! - Under loom both sides are a `SeqCst` fence, the ordering the real pair
//!   provides, so the models check the protocol built on top.
//!
//! Why the light side may read the mode with a relaxed load: [`init`] runs to
//! completion in the pool constructor, before the pool's worker threads start
//! (thread creation orders it before everything they do), and only a thread
//! running one of those workers calls [`light`]. The mode never changes after
//! `init`, so every worker reads the final value.

#[cfg(all(feature = "std", target_os = "linux", not(loom)))]
mod imp {
    use core::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};

    /// Whether this process registered for private expedited membarriers. A
    /// plain static (not through `crate::sync`): it is set once in `init`
    /// and is not part of any protocol loom checks.
    static EXPEDITED: AtomicBool = AtomicBool::new(false);

    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(cmd: libc::c_long) -> bool {
        // SAFETY: `membarrier` takes two integer arguments and touches no
        // memory of ours; an unknown command or a refused call returns -1.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) == 0 }
    }

    pub(crate) fn init() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) {
                EXPEDITED.store(true, Ordering::Relaxed);
            }
        });
    }

    #[inline]
    pub(crate) fn light() {
        if EXPEDITED.load(Ordering::Relaxed) {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
        if EXPEDITED.load(Ordering::Relaxed) && !membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) {
            // Registered, so the kernel cannot refuse this; if it ever did, a
            // light side might have skipped its fence. Say so rather than
            // risk a silent lost wake-up.
            panic!("unirun: membarrier(PRIVATE_EXPEDITED) failed after registration");
        }
    }
}

#[cfg(not(all(feature = "std", target_os = "linux", not(loom))))]
mod imp {
    use crate::sync::{fence, Ordering};

    pub(crate) fn init() {}

    #[inline]
    pub(crate) fn light() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
    }
}

/// Chooses the barrier pair for this process; idempotent. Must complete
/// before any thread calls [`light`].
pub(crate) use imp::init;

/// The cheap side: between a store and a load on the hot path.
pub(crate) use imp::light;

/// The expensive side: between a store and a load on the cold path; pairs
/// with every [`light`] of the process as a `SeqCst` fence would.
pub(crate) use imp::heavy;
