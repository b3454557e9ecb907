//! Catching task panics with their location.
//!
//! `catch_unwind` hands back the payload but not where the panic happened, so
//! a panic hook, installed once and chained in front of whatever hook was
//! there, records each panic's location and message in a thread-local. The
//! previous hook still runs, so panics print as they always do.
//!
//! Polling a task touches nothing here: only a caught panic reads the record,
//! and accepts it only if its message matches the caught payload (a user may
//! have replaced the hook since, leaving an older record behind).

use std::boxed::Box;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::string::String;
use std::sync::Once;

use crate::{JoinError, PanicLocation};

std::thread_local! {
    /// The message and location of the last panic on this thread.
    static LAST: RefCell<Option<(Option<String>, PanicLocation)>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Chains the location-recording hook in front of the current one, once.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                let at = PanicLocation::new(at.file(), at.line(), at.column());
                let message = crate::panic_message(info.payload()).map(String::from);
                // `try_with`: a panic during thread teardown has no locals left.
                let _ = LAST.try_with(|slot| {
                    if let Ok(mut slot) = slot.try_borrow_mut() {
                        *slot = Some((message, at));
                    }
                });
            }
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into [`JoinError::panicked`] with its location.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, JoinError> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let recorded = LAST
            .try_with(|slot| slot.borrow_mut().take())
            .ok()
            .flatten();
        let location = recorded
            .filter(|(message, _)| message.as_deref() == crate::panic_message(&*payload))
            .map(|(_, location)| location);
        JoinError::panicked(payload, location)
    })
}

/// Runs `f` and turns a panic into [`JoinError::panicked`] carrying its
/// message and location, as tasks do; for backends that run user code
/// outside a task (a forked child, for instance).
///
/// Installs unirun's location-recording panic hook first, if it is not yet
/// (call [`install_panic_hook`] early where installing later could race).
///
/// # Examples
///
/// ```
/// let err = unirun_core::catch_panic(|| panic!("bad input")).unwrap_err();
/// assert_eq!(err.panic_message(), Some("bad input"));
/// assert!(err.panic_location().is_some());
/// assert_eq!(unirun_core::catch_panic(|| 3).unwrap(), 3);
/// ```
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, JoinError> {
    install_hook();
    catch(f)
}

/// Installs unirun's panic hook (chained in front of the current one), which
/// records where each panic happened so a caught panic carries its location.
/// Idempotent; tasks install it when they are created.
///
/// # Examples
///
/// ```
/// unirun_core::install_panic_hook();
/// unirun_core::install_panic_hook(); // once is enough; more is harmless
/// ```
pub fn install_panic_hook() {
    install_hook();
}
