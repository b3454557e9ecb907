//! When the OS refuses new threads (`RLIMIT_NPROC`, a cgroup's `pids.max`):
//! the shared default executor, the timer, the process helpers and the
//! compat modules give a typed error or complete, never panic or hang, and
//! the shared default starts once threads can be created again.
//!
//! Each test runs in a child process (it changes the process's user and
//! limits), under the watchdog. As root, which `RLIMIT_NPROC` exempts, the
//! child first becomes uid `nobody`; only the soft limit is lowered, so the
//! test can raise it again.
#![cfg(all(
    target_os = "linux",
    feature = "process-backend",
    feature = "tokio-backend"
))]

mod common;

use std::time::{Duration, Instant};

use common::{in_child_process, watchdog_this_test};

/// `EAGAIN`: what `clone` says past `RLIMIT_NPROC`.
const EAGAIN: i32 = 11;

/// In the child: makes every new thread of this process fail until the
/// returned guard drops. `None` (printed) where the limit cannot be
/// enforced here (a capability exempts the user); the test then has
/// nothing to check.
fn no_new_threads() -> Option<Limit> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: setgid/setuid/prctl take plain integers; glibc applies
        // the id change to every thread of the process.
        let ok = unsafe {
            libc::setgid(65534) == 0
                && libc::setuid(65534) == 0
                && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) == 0
        };
        assert!(ok, "setuid(nobody): {}", std::io::Error::last_os_error());
    }
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut old) }, 0);
    let limit = Limit(old);
    limit.set(0);
    match std::thread::Builder::new().spawn(|| ()) {
        Err(_) => Some(limit),
        Ok(thread) => {
            let _ = thread.join();
            println!("RLIMIT_NPROC is not enforced for this user: nothing to check");
            None
        }
    }
}

/// The limit as it was; put back (the soft one, up to the hard one) on drop.
struct Limit(libc::rlimit);

impl Limit {
    fn set(&self, soft: libc::rlim_t) {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: self.0.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass; lowering the soft
        // limit, or raising it up to the unchanged hard one, is allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &limit) }, 0);
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        self.set(self.0.rlim_cur);
    }
}

fn assert_not_started<T: std::fmt::Debug>(what: &str, result: Result<T, unirun::JoinError>) {
    let err = result.expect_err(what);
    assert!(err.is_not_started(), "{what}: {err}");
    let text = err.to_string();
    assert!(
        text.contains("the shared default executor `unirun` could not start")
            && text.contains(&format!("(os error {EAGAIN})")),
        "{what}: the error names the pool and the OS error: {text}"
    );
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn the_shared_default_resolves_every_handle_to_not_started_and_starts_once_threads_can() {
    if !in_child_process(
        "the_shared_default_resolves_every_handle_to_not_started_and_starts_once_threads_can",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let Some(limit) = no_new_threads() else {
            return;
        };
        assert_not_started("unirun::spawn", unirun::spawn(async { 1 }).join());
        assert_not_started("unirun::to_thread", unirun::to_thread(|| 2).join());
        let executor = unirun::get_executor();
        assert_eq!(executor.num_workers(), 0, "a refused pool runs nothing");
        assert_not_started("get_executor().spawn", executor.spawn(async { 3 }).join());
        assert_not_started(
            "get_executor().spawn_blocking",
            executor.spawn_blocking(|| 4).join(),
        );
        assert_not_started("get_executor().call", executor.call(square, 5).join());
        assert_not_started("unirun::to_process", unirun::to_process(|| 6u32).join());
        // A scope says so when it is built.
        let built = unirun::Run::builder().name("no-thread").build();
        assert!(built.is_err(), "Run::build without threads must fail");
        // The refusal was not kept: once threads can start, the next use
        // starts the pool.
        drop(limit);
        assert_eq!(unirun::spawn(async { 7 }).join().unwrap(), 7);
        assert!(unirun::get_executor().num_workers() >= 1);
        assert_eq!(unirun::to_thread(|| 8).join().unwrap(), 8);
        unirun::reset();
    });
}

#[test]
fn a_sleep_ends_at_its_deadline_when_the_timer_thread_cannot_start() {
    if !in_child_process("a_sleep_ends_at_its_deadline_when_the_timer_thread_cannot_start") {
        return;
    }
    watchdog_this_test(|| {
        let Some(limit) = no_new_threads() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_millis(20);
        unirun::block_on(unirun::time::sleep_until(deadline));
        assert!(Instant::now() >= deadline, "a sleep never ends early");
        let elapsed = unirun::block_on(unirun::time::timeout(
            Duration::from_millis(5),
            std::future::pending::<()>(),
        ));
        assert!(elapsed.is_err(), "a timeout without a driver still elapses");
        // Once threads can start, the next sleep that waits starts the
        // driver and is woken by it.
        drop(limit);
        unirun::block_on(unirun::time::sleep(Duration::from_millis(5)));
        assert_eq!(common::threads_named("unirun-timer"), 1);
        unirun::reset();
    });
}

#[test]
fn compat_thread_reports_a_refused_thread_as_std_does() {
    if !in_child_process("compat_thread_reports_a_refused_thread_as_std_does") {
        return;
    }
    watchdog_this_test(|| {
        let Some(_limit) = no_new_threads() else {
            return;
        };
        let dropped = std::sync::Arc::new(());
        let held = dropped.clone();
        let refused = unirun::compat::thread::Builder::new().spawn(move || drop(held));
        let Err(err) = refused else {
            panic!("Builder::spawn gives the OS error");
        };
        assert_eq!(err.raw_os_error(), Some(EAGAIN), "{err}");
        assert_eq!(
            std::sync::Arc::strong_count(&dropped),
            1,
            "the refused closure is dropped, unrun"
        );
        // `spawn` panics as std's does ("failed to spawn thread").
        let panicked = std::panic::catch_unwind(|| unirun::compat::thread::spawn(|| ()));
        let Err(payload) = panicked else {
            panic!("compat::thread::spawn panics as std's");
        };
        let message = common::message(&*payload);
        assert!(message.contains("failed to spawn thread"), "{message}");
    });
}

#[test]
fn compat_tokio_spawn_blocking_errs_inside_a_runtime_when_no_thread_can_start() {
    if !in_child_process(
        "compat_tokio_spawn_blocking_errs_inside_a_runtime_when_no_thread_can_start",
    ) {
        return;
    }
    watchdog_this_test(|| {
        // A current-thread runtime starts no thread of its own.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let Some(_limit) = no_new_threads() else {
            return;
        };
        // unirun's own reactor cannot start here either: its runtime is
        // given up without a blocking drop inside this async context.
        let joined = rt.block_on(async { unirun::compat::tokio::task::spawn_blocking(|| 3).await });
        let err = joined.expect_err("no thread for the closure");
        assert!(!err.is_panic(), "{err}");
        assert!(err.to_string().contains("could not start"), "{err}");
        drop(rt);
    });
}
