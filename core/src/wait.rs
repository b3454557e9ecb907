//! The wait hook: lets a layer above release a lock of its own while
//! [`block_on`](crate::block_on) or [`JoinHandle::join`](crate::JoinHandle::join)
//! waits, the way CPython releases the GIL around blocking calls.
//!
//! unirun's facade uses it for `ThreadMode::Gil` scopes: a task of a
//! serialized scope that blocks on another task of the same scope must let
//! that task run, or the scope deadlocks on itself.
//!
//! Waits are strictly nested on a thread (a wait that runs other tasks may
//! start more waits inside them, and those end first), so the hook can keep
//! what it released on a per-thread stack and give it back in LIFO order.

#[cfg(feature = "std")]
use std::sync::OnceLock;

/// Two functions called around every blocking wait of [`block_on`](crate::block_on)
/// (and so [`JoinHandle::join`](crate::JoinHandle::join)).
///
/// - `release` runs before the thread parks (on a worker thread, after the
///   worker's queues went to another thread, which may already be running
///   tasks that need what `release` gives up). It returns a token.
/// - `reacquire(token)` runs before the waited-on future is polled again and
///   when the wait ends, with the token `release` returned.
///
/// Calls pair up and nest LIFO on each thread. A future that is ready at its
/// first poll never calls either.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
///
/// thread_local! {
///     // Whatever this thread holds that others may need while it waits.
///     static HOLDING: Cell<bool> = const { Cell::new(false) };
/// }
/// fn release() -> usize {
///     HOLDING.with(|h| h.replace(false)) as usize
/// }
/// fn reacquire(token: usize) {
///     HOLDING.with(|h| h.set(token == 1));
/// }
///
/// // Installed once per process; a second hook is refused.
/// assert!(unirun_core::set_wait_hook(unirun_core::WaitHook { release, reacquire }));
/// assert!(!unirun_core::set_wait_hook(unirun_core::WaitHook { release, reacquire }));
///
/// HOLDING.with(|h| h.set(true));
/// let task = std::thread::spawn(|| 7);
/// // Not ready at once: the wait parks, released, and reacquires before returning.
/// let seven = unirun_core::block_on(async { std::thread::yield_now(); 7 });
/// assert_eq!(seven + task.join().unwrap(), 14);
/// assert!(HOLDING.with(|h| h.get()));
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
#[derive(Debug, Clone, Copy)]
pub struct WaitHook {
    /// Called before the thread stops running the waited-on future's code.
    pub release: fn() -> usize,
    /// Called before it runs that code again, with `release`'s token.
    pub reacquire: fn(usize),
}

#[cfg(feature = "std")]
static HOOK: OnceLock<WaitHook> = OnceLock::new();

/// Installs the process-wide [`WaitHook`]; returns `false` (and keeps the
/// first) if one was installed already. Without a hook, waits cost one
/// atomic load more than they would otherwise, and only once the future was
/// not ready at its first poll.
///
/// # Examples
///
/// ```
/// fn release() -> usize {
///     0 // nothing held
/// }
/// fn reacquire(_token: usize) {}
///
/// assert!(unirun_core::set_wait_hook(unirun_core::WaitHook { release, reacquire }));
/// assert_eq!(unirun_core::block_on(async { 1 }), 1);
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub fn set_wait_hook(hook: WaitHook) -> bool {
    HOOK.set(hook).is_ok()
}

/// A wait in progress: `Held` while the waiting code may run, `Released`
/// while the thread parks or runs other tasks. Dropping it reacquires.
/// Without `std` there is no hook and every call is a no-op.
// Only `std`'s cached-parker `block_on` waits through it.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct Waiting {
    #[cfg(feature = "std")]
    hook: Option<&'static WaitHook>,
    #[cfg(feature = "std")]
    released: Option<usize>,
}

#[cfg_attr(not(feature = "std"), allow(dead_code))]
impl Waiting {
    /// Starts a wait, held.
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(feature = "std")]
            hook: HOOK.get(),
            #[cfg(feature = "std")]
            released: None,
        }
    }

    /// Calls the hook's `release`, unless released already.
    #[inline]
    pub(crate) fn release(&mut self) {
        #[cfg(feature = "std")]
        if let (Some(hook), None) = (self.hook, self.released) {
            self.released = Some((hook.release)());
        }
    }

    /// Calls the hook's `reacquire`, if released.
    #[inline]
    pub(crate) fn reacquire(&mut self) {
        #[cfg(feature = "std")]
        if let (Some(hook), Some(token)) = (self.hook, self.released.take()) {
            (hook.reacquire)(token);
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.reacquire();
    }
}
