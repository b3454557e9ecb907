//! Catching task panics with their location.
//!
//! `catch_unwind` hands back the payload but not where the panic happened, so
//! a panic hook, chained in front of whatever hook was there, records each
//! panic's message and location in a thread-local. The previous hook still
//! runs, so panics print as they always do.
//!
//! # Tying a record to its panic
//!
//! Every record carries a per-thread sequence number, bumped by the hook. A
//! catch reads the counter before it runs its closure and accepts a record
//! only if the hook ran *during* that closure (its number is newer) and the
//! message matches the caught payload (a panic caught inside the closure may
//! have recorded after). So a record left behind by a panic that someone
//! else caught (a plain `catch_unwind`) is never attributed to a later panic,
//! whatever its message; a payload re-raised with `resume_unwind`, which
//! never runs a hook, gets no location rather than a wrong one.
//!
//! # When the hook is replaced, or cannot be installed
//!
//! - A program that replaces the panic hook after unirun installed its own
//!   drops the recorder. The next caught panic finds no record for itself;
//!   unirun then chains its recorder in front of the new hook (which keeps
//!   running for every panic, so the program's choice of hook stands). That
//!   one panic has no location; later ones do. Calling
//!   [`install_panic_hook`] right after `set_hook` re-chains at once, so no
//!   location is lost at all. A program whose hook wraps the recorder (it
//!   took it with `take_hook` and calls it) keeps it alive and in the
//!   chain: nothing is re-chained. (One that takes it and keeps it
//!   without calling it gets no more locations.)
//! - Chaining is the only time unirun touches the hook, and on stable Rust
//!   it cannot be atomic (see `ensure_chained`): while it runs, another
//!   thread's panic reaches std's default hook, not the program's. So it
//!   never happens while the recorder lives (a re-raised panic, which runs
//!   no hook, or a repeated [`install_panic_hook`] only read an atomic; test
//!   `panic_hook_concurrent.rs`), only at the first install and after the
//!   program dropped the recorder; call [`install_panic_hook`] in `main`
//!   before starting threads, and right after `set_hook`, to do both while
//!   no other thread runs.
//! - The hook cannot be changed while the thread is panicking (std panics
//!   then, which would abort): a task created inside a destructor during
//!   unwinding does not install it; the next task created outside unwinding
//!   does.
//!
//! # `panic = "abort"`
//!
//! With `panic = "abort"` nothing is caught: a panicking task (or a
//! panicking destructor of a cancelled task) aborts the process after the
//! hook chain ran, as any panic does in such a build. No `JoinError` is ever
//! `panicked` there; the other errors (cancelled, timed out, ...) are
//! unaffected.

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::string::String;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use crate::{JoinError, PanicLocation};

std::thread_local! {
    /// Panics recorded by the hook on this thread so far.
    static SEQ: Cell<u64> = const { Cell::new(0) };
    /// The last recorded panic on this thread: its sequence number, message
    /// and location.
    static LAST: RefCell<Option<Record>> = const { RefCell::new(None) };
    /// Set while one of our hooks runs the hook it wraps, so that stacked
    /// recorders (after a re-chain) record each panic once.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

struct Record {
    seq: u64,
    message: Option<String>,
    location: PanicLocation,
}

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// First-time installation, done by the first task created outside unwinding.
static FIRST: Once = Once::new();
/// Serializes our take-and-set of the hook (never held while a hook runs);
/// holds the number of recorders installed so far.
static INSTALLS: Mutex<usize> = Mutex::new(0);
/// The number of the recorder we installed last while it lives, else 0.
///
/// std drops a hook that `set_hook` replaces (or that `take_hook` hands
/// out and its taker drops), so a recorder that still lives is still
/// called: by std, or by a program's hook that took it and calls it (a
/// wrapper). While it lives there is nothing to chain, and the hook is not
/// touched at all: looking at it would take it out (`take_hook` leaves
/// std's default hook in its place until `set_hook` puts one back) and
/// open a window in which another thread's panic would reach the default
/// hook instead of the program's.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Owned by a recorder: clears [`LIVE`] when std (or whoever took the
/// recorder) drops it, if it is still the latest one.
struct Alive(usize);

impl Drop for Alive {
    fn drop(&mut self) {
        let _ = LIVE.compare_exchange(self.0, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Installs the recorder the first time a task is created (one atomic load
/// afterwards); a no-op while this thread is panicking.
#[inline]
pub(crate) fn install_hook() {
    if !FIRST.is_completed() {
        install_slow();
    }
}

#[cold]
fn install_slow() {
    // `set_hook` panics on a panicking thread: leave it to a later task.
    if std::thread::panicking() {
        return;
    }
    FIRST.call_once(ensure_chained);
}

/// Makes sure our recorder is in the hook chain, chaining the current hook
/// behind a new one if the last one is gone. Does nothing while this
/// thread is panicking.
///
/// Only a chaining touches the hook, and it cannot be atomic on stable
/// Rust: there is no swap, `take_hook` leaves std's default hook installed
/// until `set_hook` replaces it, and a panic on another thread in between
/// runs that default hook (it prints the panic the usual way, but a
/// program's own hook misses it). So it happens only when it must: at the
/// first install, and after the program dropped our recorder (replaced it
/// without wrapping it). Installing early, as [`install_panic_hook`]'s
/// docs advise, does both while no other thread can panic.
fn ensure_chained() {
    if std::thread::panicking() || LIVE.load(Ordering::Acquire) != 0 {
        return;
    }
    let mut installs = INSTALLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Checked again under the lock: another thread may have chained.
    if LIVE.load(Ordering::Acquire) != 0 {
        return;
    }
    *installs += 1;
    let alive = Alive(*installs);
    let current = panic::take_hook();
    let recorder: Hook = Box::new(move |info| {
        let _alive = &alive;
        record(info);
        // Recorders stacked by earlier re-chains record nothing more.
        let outer = IN_HOOK
            .try_with(|flag| !flag.replace(true))
            .unwrap_or(false);
        current(info);
        if outer {
            let _ = IN_HOOK.try_with(|flag| flag.set(false));
        }
    });
    LIVE.store(*installs, Ordering::Release);
    panic::set_hook(recorder);
}

/// The hook's work: number this panic and remember where it happened.
fn record(info: &PanicHookInfo<'_>) {
    if IN_HOOK.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    let Some(at) = info.location() else { return };
    let location = PanicLocation::new(at.file(), at.line(), at.column());
    let message = crate::panic_message(info.payload()).map(String::from);
    // `try_with`: a panic during thread teardown has no locals left.
    let Ok(seq) = SEQ.try_with(|seq| {
        seq.set(seq.get() + 1);
        seq.get()
    }) else {
        return;
    };
    let _ = LAST.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(Record {
                seq,
                message,
                location,
            });
        }
    });
}

/// Runs `f`, turning a panic into [`JoinError::panicked`] with its location.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, JoinError> {
    let before = SEQ.try_with(Cell::get).unwrap_or(u64::MAX);
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| caught(payload, before))
}

/// The slow path of [`catch`]: find this panic's record, if the hook made one.
#[cold]
fn caught(payload: crate::PanicPayload, before: u64) -> JoinError {
    let recorded = LAST
        .try_with(|slot| slot.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .ok()
        .flatten();
    let fresh = recorded.as_ref().is_some_and(|r| r.seq > before);
    let location = recorded
        .filter(|r| r.seq > before && r.message.as_deref() == crate::panic_message(&*payload))
        .map(|r| r.location);
    if !fresh && FIRST.is_completed() {
        // The hook did not run for this panic: it was re-raised with
        // `resume_unwind`, or someone replaced our hook. Re-chain in the
        // latter case, so later panics are located again.
        ensure_chained();
    }
    JoinError::panicked(payload, location)
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

/// Chains unirun's panic hook, which records where each panic happened so a
/// caught panic carries its location, in front of the current hook, unless
/// it is still in the chain (the current hook, or wrapped and called by
/// it): then the hook is not touched at all. Tasks install it when they
/// are created; call this after replacing the panic hook with
/// `std::panic::set_hook` to keep every location (unirun otherwise
/// re-chains itself at the first caught panic that finds it missing).
/// Does nothing while the thread is panicking.
///
/// Chaining takes the current hook and sets a new one; on stable Rust that
/// cannot be atomic, and a panic on another thread in between runs std's
/// default hook instead of the program's. So call this in `main` before
/// starting threads, and right after your own `set_hook`, while no other
/// thread can panic.
///
/// # Examples
///
/// ```
/// unirun_core::install_panic_hook();
/// unirun_core::install_panic_hook(); // once is enough; more is harmless
///
/// // A program that sets its own hook keeps it: unirun's records, then
/// // calls it.
/// std::panic::set_hook(Box::new(|_| {}));
/// unirun_core::install_panic_hook();
/// let err = unirun_core::catch_panic(|| panic!("quiet")).unwrap_err();
/// assert!(err.panic_location().is_some());
/// # let _ = std::panic::take_hook();
/// ```
pub fn install_panic_hook() {
    if std::thread::panicking() {
        return;
    }
    if FIRST.is_completed() {
        ensure_chained();
    } else {
        FIRST.call_once(ensure_chained);
    }
}
