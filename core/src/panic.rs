//! Catching task panics with their location.
//!
//! `catch_unwind` hands back the payload but not where the panic happened, so
//! a panic hook, installed once and chained in front of whatever hook was
//! there, records the location while a task is being polled. The previous hook
//! still runs, so panics print as they always do.

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::{JoinError, PanicLocation};

std::thread_local! {
    /// Whether this thread is inside [`catch`], i.e. polling a task.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The location of the last panic caught while `CATCHING`.
    static LOCATION: RefCell<Option<PanicLocation>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Chains the location-recording hook in front of the current one, once.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                if let Some(at) = info.location() {
                    let at = PanicLocation::new(at.file(), at.line(), at.column());
                    LOCATION.with(|slot| *slot.borrow_mut() = Some(at));
                }
            }
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into [`JoinError::panicked`] with its location.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, JoinError> {
    let was_catching = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was_catching));
    result.map_err(|payload| {
        let location = LOCATION.with(|slot| slot.borrow_mut().take());
        JoinError::panicked(payload, location)
    })
}
