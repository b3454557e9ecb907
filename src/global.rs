//! Process-wide state: the configuration from [`configure`], the
//! environment as read once, the cached [`Capabilities`], and the shared
//! default executor behind the top-level helpers; [`reset`] clears it all.
//!
//! The hot path ([`spawn`], [`to_thread`]) does not lock: each thread caches
//! the default [`Handle`] with the generation it was read at, and a global
//! generation counter, bumped by `configure`/`reset`, tells it when to look
//! again.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use unirun_platform::fork_guard::{ForkMutex, ForkMutexGuard};

use crate::backend::{self, Owned};
use crate::config::RuntimeConfig;
use crate::error::Error;
use crate::flavor::{CompatMode, Flavor};
use crate::gil::Gil;
use crate::scheduler::{self, Capabilities, EnvSnapshot, Plan, Request};
use crate::scope::ScopeState;
use crate::{Handle, JoinHandle};

#[derive(Default)]
struct State {
    /// Set by `configure`; the code layer under every scope's own config.
    config: RuntimeConfig,
    env: Option<Arc<EnvSnapshot>>,
    caps: Option<Capabilities>,
    default: Option<SharedDefault>,
    /// Warnings to print once the lock is released (nothing prints under
    /// it: a fork path holds the stderr lock while it waits for this one).
    warnings: Vec<String>,
    /// The pre-forked pool behind `call` on handles without a scope of
    /// their own (the shared default); started on first use.
    processes: Option<backend::process::ProcessPool>,
    /// The fork generation (`unirun_core::fork_generation`) this state was
    /// last used in: in another one, `default` is the parent's (see
    /// [`State::adopt`]).
    fork_generation: usize,
}

/// The shared default executor.
struct SharedDefault {
    owned: Owned,
    /// In `Gil` mode, the scope that serializes the helpers' tasks.
    scope: Option<Arc<ScopeState>>,
    handle: Handle,
}

/// Fork-guarded: a forked child reaches it through every helper, so it is
/// never held across one of unirun's forks (see `unirun_platform::fork_guard`).
static STATE: ForkMutex<Option<State>> = ForkMutex::new(None);
/// The compat modules' mode, cached: 0 = not read since the last reset.
static COMPAT: AtomicU8 = AtomicU8::new(0);
/// The compat mode last reported (`UNIRUN_TRACE`, `tracing`), or 0.
static COMPAT_SAID: AtomicU8 = AtomicU8::new(0);
const MANAGED: u8 = 1;
const PASSTHROUGH: u8 = 2;
/// Bumped whenever the default executor may have changed.
static GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's copy of the default handle, and the generation it is from.
    static CACHED: RefCell<Option<(u64, Handle)>> = const { RefCell::new(None) };
    /// The generation in which this thread saw no default running (see
    /// [`current_default`]), or 0.
    static NO_DEFAULT: Cell<u64> = const { Cell::new(0) };
}

fn state() -> ForkMutexGuard<'static, Option<State>> {
    let mut guard = STATE.lock();
    // A state made fresh (at start-up or by `reset`) says generation 0: in
    // a child it is adopted at once, with nothing in it to forget.
    let s = guard.get_or_insert_with(State::default);
    let generation = unirun_core::fork_generation();
    if s.fork_generation != generation {
        s.adopt(generation);
    }
    guard
}

/// Run by `unirun_core::mark_forked_child` in every forked child: each
/// thread's cached default handle is the parent's, so the cache hit in
/// [`get_executor`] must miss once; the miss path then finds the state
/// from another fork generation (see [`State::adopt`]). Only an atomic: it
/// runs right after the fork.
fn forget_cached_defaults() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// What `unirun_core::mark_forked_child` runs in every forked child, on
/// its only thread: the default caches miss once (see
/// [`forget_cached_defaults`]), and the gils the forking thread held are
/// taken again on the child's locks (see [`crate::gil::retake_after_fork`]).
fn after_fork_in_child() {
    forget_cached_defaults();
    crate::gil::retake_after_fork();
}

/// Installs [`after_fork_in_child`] (the core keeps one hook per process:
/// every caller installs this same one).
pub(crate) fn watch_forks() {
    unirun_core::on_forked_child(after_fork_in_child);
}

/// [`Gil::for_scope`], with [`after_fork_in_child`] installed first when
/// there is a gil: a gil held across a fork is taken again in the child.
pub(crate) fn gil_for_scope(
    mode: crate::ThreadMode,
    config: &crate::RuntimeConfig,
) -> Option<std::sync::Arc<Gil>> {
    let gil = Gil::for_scope(mode, config);
    if gil.is_some() {
        watch_forks();
    }
    gil
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = state();
    let s = guard.get_or_insert_with(State::default);
    let out = f(s);
    let warnings = std::mem::take(&mut s.warnings);
    drop(guard);
    print_warnings(warnings);
    out
}

fn print_warnings(warnings: Vec<String>) {
    for warning in warnings {
        crate::observe::env_warning(&warning);
    }
}

impl State {
    /// In a forked child, the first time it takes the lock: the shared
    /// default is the parent's, whose workers and blocking lane (and
    /// unirun-io thread) do not exist here. It is forgotten, never dropped
    /// nor shut down (that would wait for, or join, threads that are not
    /// here, and could run copies of the parent's tasks' destructors): its
    /// memory is leaked on purpose, once per fork. The next use starts a
    /// default of the child's own, with real threads and the child's own
    /// unirun-io, decided from the same configuration. The configuration,
    /// the environment read and the capabilities are plain data and stay;
    /// so does the shared process pool, which in a child forks a fresh
    /// process per call instead of using the parent's workers.
    #[cold]
    fn adopt(&mut self, generation: usize) {
        std::mem::forget(self.default.take());
        self.fork_generation = generation;
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }

    fn env(&mut self) -> Arc<EnvSnapshot> {
        let warnings = &mut self.warnings;
        self.env
            .get_or_insert_with(|| {
                let (config, rejected) = crate::config::from_env_lenient();
                // Once per read, i.e. once per process or reset.
                for var in &rejected {
                    warnings.push(format!("unirun: ignoring invalid {var}; using the default"));
                }
                let keys = std::env::vars_os().filter_map(|(key, _)| key.into_string().ok());
                warnings.extend(crate::env::unknown_vars(keys));
                Arc::new(EnvSnapshot { config, rejected })
            })
            .clone()
    }

    fn caps(&mut self) -> Capabilities {
        self.caps.get_or_insert_with(Capabilities::detect).clone()
    }
}

/// What the process backend asks of the globals (one gate for both).
#[cfg(all(unix, feature = "process-backend"))]
pub(crate) mod processes {
    use super::{with_state, Ordering, GENERATION};

    /// The current generation: it changes whenever
    /// [`configure`](crate::configure) or [`reset`](crate::reset) may have
    /// changed the configuration or the environment read.
    pub(crate) fn generation() -> u64 {
        GENERATION.load(Ordering::Acquire)
    }

    /// The shared process pool (see `State::processes`), created on first use
    /// and shut down by [`reset`](crate::reset).
    pub(crate) fn shared_process_pool() -> unirun_process::ProcessPool {
        let (pool, new) = with_state(|s| {
            let workers = s.caps().suggested_process_workers();
            let new = s.processes.is_none();
            let pool = s
                .processes
                .get_or_insert_with(|| {
                    unirun_process::ProcessPool::new(workers, Default::default())
                })
                .clone();
            (pool, new.then_some(workers))
        });
        // Said outside the lock (nothing prints under it).
        if let Some(workers) = new {
            crate::observe::process_pool("the shared default", workers, pool.origin());
        }
        pool
    }
}

/// What a scope needs from the globals to decide.
pub(crate) struct Snapshot {
    pub(crate) config: RuntimeConfig,
    pub(crate) env: Arc<EnvSnapshot>,
    pub(crate) caps: Capabilities,
}

pub(crate) fn snapshot() -> Snapshot {
    with_state(|s| Snapshot {
        config: s.config.clone(),
        env: s.env(),
        caps: s.caps(),
    })
}

/// The shared default executor: a thread pool named `unirun`, decided by
/// the scheduler on first use from [`configure`]'s settings and the
/// `UNIRUN_*` environment, and kept until [`reset`].
///
/// The environment is read leniently here: an invalid variable is ignored
/// (the pool runs on defaults), printed once on stderr and recorded in the
/// decision's [`env_rejected`](crate::DecisionTrace::env_rejected).
/// `UNIRUN_THREAD_MODE=gil` serializes the helpers' async tasks too (their
/// blocking closures only when `configure` chose `Gil` in code; see
/// [`ThreadMode`](crate::ThreadMode)).
///
/// In a child forked by unirun (`to_process`, a process pool's worker) the
/// shared default is the child's own, started on first use with threads
/// of its own and the child's own reactor: blocking closures that wait for
/// each other, `compat::thread` and tokio sockets work there as in the
/// parent. The parent's copy (whose threads `fork` did not copy) is
/// forgotten, never shut down; a [`Handle`] to it taken before the fork
/// still runs its work inline on the calling thread.
///
/// # Examples
///
/// ```
/// let handle = unirun::get_executor();
/// assert!(handle.num_workers() >= 1);
/// assert_eq!(handle.name(), "unirun");
/// ```
///
/// # When no thread can start
///
/// If the OS refuses the pool's threads (`RLIMIT_NPROC`, a cgroup's
/// `pids.max`), this does not panic: it returns a handle that runs nothing,
/// whose every task and blocking closure (and so every [`spawn`] and
/// [`to_thread`]) resolves at once to
/// [`JoinError::not_started`](crate::JoinError::not_started), naming the
/// pool and the OS error. That handle is not kept: the next call tries to
/// start the pool again, so a program recovers once threads can be
/// created. Tested by `tests/no_thread.rs`.
pub fn get_executor() -> Handle {
    let generation = GENERATION.load(Ordering::Acquire);
    // `try_with`: during thread teardown the cache may be gone already.
    let cached = CACHED
        .try_with(|c| match &*c.borrow() {
            Some((g, handle)) if *g == generation => Some(handle.clone()),
            _ => None,
        })
        .ok()
        .flatten();
    if let Some(handle) = cached {
        return handle;
    }
    // Before any thread caches a handle: a forked child then misses once.
    watch_forks();
    let (handle, generation) = default_handle();
    // A refused default (no generation) is not cached: the next call retries.
    if let Some(generation) = generation {
        let _ = CACHED.try_with(|c| c.replace(Some((generation, handle.clone()))));
    }
    handle
}

/// The shared default, if the calling thread runs one of its tasks or
/// blocking closures or is inside [`unirun::block_on`](crate::block_on)
/// (for [`Handle::try_current`]); never starts it except for `block_on`.
pub(crate) fn current_default() -> Option<Handle> {
    if crate::scope::in_block_on() {
        return Some(get_executor());
    }
    let generation = GENERATION.load(Ordering::Acquire);
    let cached = CACHED
        .try_with(|c| match &*c.borrow() {
            Some((g, handle)) if *g == generation => Some(handle.clone()),
            _ => None,
        })
        .ok()
        .flatten();
    let handle = match cached {
        Some(handle) => handle,
        // A thread of a default that `reset` (or `configure`) replaced
        // since (a blocking closure still running): none of the current
        // default's threads.
        None if on_a_replaced_default() => return None,
        // Looked at already: no default was running, and a thread that
        // existed before the default is none of its threads.
        None if NO_DEFAULT.try_with(Cell::get) == Ok(generation) => return None,
        // Not cached here: look without starting one (a thread of the
        // default that never spawned has no copy yet), and remember.
        None => {
            let running = state()
                .as_ref()
                .and_then(|s| s.default.as_ref().map(|d| d.handle.clone()));
            match running {
                Some(handle) => {
                    let _ = CACHED.try_with(|c| c.replace(Some((generation, handle.clone()))));
                    handle
                }
                None => {
                    let _ = NO_DEFAULT.try_with(|c| c.set(generation));
                    return None;
                }
            }
        }
    };
    match handle.backend() {
        backend::Backend::Threads(pool) if pool.is_pool_thread() => Some(handle),
        _ => None,
    }
}

/// Whether the calling thread is a thread of a shared default that was
/// replaced (by [`reset`], [`configure`] or a fork) since it last looked:
/// its cached copy is from an older generation and names the thread's own
/// pool. For [`Handle::current`]'s message, and so that such a thread is
/// never taken for one of the current default's.
pub(crate) fn on_a_replaced_default() -> bool {
    let generation = GENERATION.load(Ordering::Acquire);
    CACHED
        .try_with(|c| match &*c.borrow() {
            Some((g, handle)) if *g != generation => match handle.backend() {
                backend::Backend::Threads(pool) => pool.is_pool_thread(),
                _ => false,
            },
            _ => false,
        })
        .unwrap_or(false)
}

/// The shared default if one is running, without starting one.
#[cfg(feature = "tokio-backend")]
pub(crate) fn running_default() -> Option<Handle> {
    let guard = state();
    guard
        .as_ref()
        .and_then(|s| s.default.as_ref())
        .map(|default| default.handle.clone())
}

/// The default handle, creating the default executor if needed; with the
/// generation it belongs to (`None`: the pool could not start, and the
/// handle refuses work; see [`refused_default`]).
fn default_handle() -> (Handle, Option<u64>) {
    let mut guard = state();
    let s = guard.get_or_insert_with(State::default);
    let generation = GENERATION.load(Ordering::Acquire);
    if let Some(default) = &s.default {
        return (default.handle.clone(), Some(generation));
    }
    let request = Request {
        requested: Flavor::Auto,
        code: RuntimeConfig::default(),
        configured: s.config.clone(),
        name: None,
        provided: false,
        provided_flavor: Flavor::Threads,
        implicit: true,
        ambient_tokio: false,
    };
    let (env, caps) = (s.env(), s.caps());
    let decision = scheduler::decide(request, &env, &caps, None);
    let fallback = || Plan::Threads {
        workers: caps.cpu_budget(),
        blocking_cap: caps.default_blocking(),
        name: scheduler::DEFAULT_NAME.to_string(),
    };
    let (plan, gil, trace) = match decision {
        Ok(d) => {
            let gil = gil_for_scope(d.thread_mode, &d.config);
            match d.plan {
                plan @ (Plan::Threads { .. } | Plan::Processes { .. }) => {
                    (plan, gil, Some(d.trace))
                }
                // Implicit requests always get a pool of their own.
                _ => (fallback(), gil, Some(d.trace)),
            }
        }
        // `configure` validated the config and env values are checked when
        // read, so this is unreachable; still, never fail the helpers.
        Err(err) => {
            s.warnings.push(format!(
                "unirun: {err}; starting the default executor with defaults"
            ));
            (fallback(), None, None)
        }
    };
    let started = match backend::start(&plan, Default::default()) {
        Ok(Some(started)) => started,
        failed => {
            let why = match failed {
                Err(err) => err.to_string(),
                Ok(_) => format!("no pool for the plan {plan:?}"),
            };
            return refused_default(guard, why);
        }
    };
    let (backend, owned) = (started.backend.clone(), started.owned);
    let trace = match (trace, backend.reactor()) {
        (Some(trace), Some(reactor)) => Some(trace.with_reactor(reactor)),
        (trace, _) => trace,
    };
    let forks = started.processes.is_some();
    // A scope only where the default needs one: serializing (gil), or
    // saying it forks (processes); otherwise tasks go straight to the pool.
    let scope = (gil.is_some() || forks).then(|| {
        if let Some(pool) = &started.processes {
            s.processes.get_or_insert(pool.clone());
        }
        ScopeState::new(
            backend.clone(),
            gil,
            true,
            Default::default(),
            started.processes,
        )
    });
    let handle = Handle::new(backend, scope.clone());
    s.default = Some(SharedDefault {
        owned,
        scope,
        handle: handle.clone(),
    });
    let warnings = std::mem::take(&mut s.warnings);
    drop(guard);
    print_warnings(warnings);
    if let Some(trace) = trace {
        scheduler::publish(&trace, None);
    }
    (handle, Some(generation))
}

/// The shared default when the OS refused its threads: a handle whose
/// every task and closure resolves at once to
/// [`JoinError::not_started`](crate::JoinError::not_started) with `why`
/// (the OS error). Nothing is kept: the next use (once threads can be
/// created again) tries to start the pool anew. Cold: never on a pool
/// that started.
#[cold]
#[inline(never)]
fn refused_default(
    mut guard: ForkMutexGuard<'static, Option<State>>,
    why: String,
) -> (Handle, Option<u64>) {
    let name = scheduler::DEFAULT_NAME;
    let reason = format!("the shared default executor `{name}` could not start: {why}");
    let warnings = guard
        .as_mut()
        .map(|s| std::mem::take(&mut s.warnings))
        .unwrap_or_default();
    drop(guard);
    print_warnings(warnings);
    let backend = backend::Backend::Refused(backend::refused::Handle::new(name, reason));
    (Handle::new(backend, None), None)
}

/// Replaces the process-wide configuration that scopes and the shared
/// default executor start from (scope settings made in code win over it;
/// the environment fills what both leave unset; the kill switches
/// `UNIRUN_FORCE_THREADS`, `UNIRUN_FORCE_PROCESS` and `UNIRUN_COMPAT_MODE`
/// win over everything).
///
/// A shared default executor already running is shut down (its tasks
/// finish first) and decided again on next use, with the new settings;
/// so is the shared process pool behind `Handle::call`. A process call
/// already sent to a worker is not waited for: it keeps its worker, its
/// reply is read on a thread of its own, and its handle, joined or not
/// yet, still gives its result (see
/// `ProcessPool::retire`); one
/// whose reply a thread is reading at that moment (a `join` in progress, or
/// a call running on the blocking lane: the first calls that start
/// workers, large requests) is a running task and is waited for, and one
/// still queued for a worker resolves to cancelled.
/// Scopes that borrow it (`Flavor::Shared`) should end first: what they
/// spawn afterwards is cancelled. Call `configure` at start-up.
///
/// # Errors
///
/// [`Error::InvalidSetting`] for impossible settings such as
/// `max_workers(0)`; the configuration is then unchanged.
///
/// # Examples
///
/// ```
/// use unirun::RuntimeConfig;
///
/// unirun::configure(RuntimeConfig::default().max_workers(2))?;
/// assert!(unirun::get_executor().num_workers() <= 2);
/// let err = unirun::configure(RuntimeConfig::default().max_workers(0)).unwrap_err();
/// assert!(err.to_string().contains("max_workers"));
/// # unirun::reset();
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn configure(config: RuntimeConfig) -> Result<(), Error> {
    config.validate()?;
    COMPAT.store(0, Ordering::Release);
    let (old, processes) = with_state(|s| {
        s.config = config;
        GENERATION.fetch_add(1, Ordering::AcqRel);
        (s.default.take(), s.processes.take())
    });
    // Calls already sent go on without the old default: its shutdown below
    // does not wait for them, and their handles still get their results.
    let scope = old.as_ref().and_then(|old| old.scope.clone());
    retire_process_pools(processes.as_ref(), scope.as_ref());
    if let Some(old) = old {
        wait_quietly(&old);
        old.owned.shutdown();
    }
    // What is left of the pools stops; the next call starts a fresh one.
    stop_process_pools(processes.as_ref(), scope.as_ref());
    Ok(())
}

/// The process pools of the shared default being replaced: its shared
/// pool, and the pool of its scope (in `Gil` mode).
fn old_process_pools<'a>(
    shared: Option<&'a backend::process::ProcessPool>,
    scope: Option<&'a Arc<ScopeState>>,
) -> impl Iterator<Item = &'a backend::process::ProcessPool> {
    let scoped = scope.and_then(|scope| scope.processes.get());
    shared.into_iter().chain(scoped)
}

/// Lets go of the calls already sent through the shared default being
/// replaced (see `ProcessPool::retire`): they keep their workers, their
/// replies are read on threads of their own and their handles get the
/// results, while a wait for the old default's tasks does not wait for
/// them; calls still queued for a worker resolve to cancelled.
fn retire_process_pools(
    shared: Option<&backend::process::ProcessPool>,
    scope: Option<&Arc<ScopeState>>,
) {
    for pool in old_process_pools(shared, scope) {
        pool.retire();
    }
}

/// Stops what is left of the retired pools: calls still running on a
/// thread of their own (not let go of) are cancelled, idle workers are
/// reaped and the forker thread is let go of once the calls let go of end.
fn stop_process_pools(
    shared: Option<&backend::process::ProcessPool>,
    scope: Option<&Arc<ScopeState>>,
) {
    for pool in old_process_pools(shared, scope) {
        pool.shutdown_now();
    }
}

/// Waits for a retired default's scope (in `Gil` mode) to finish its tasks.
fn wait_quietly(old: &SharedDefault) {
    if let Some(scope) = &old.scope {
        if !scope.is_current() {
            unirun_core::block_on(scope.tasks.wait_empty());
        }
        scope.tasks.close();
    }
}

/// Returns unirun to its state at process start, for tests: the shared
/// default executor is shut down (tasks that have not finished are
/// cancelled and their handles resolve to cancelled; blocking closures
/// already running finish; its threads are joined), the configuration from
/// [`configure`] is dropped, the environment is read again on next use,
/// and the cached [`Capabilities`] and [`last_decision`](crate::last_decision)
/// are cleared, and every decision listener is removed (those of
/// [`add_decision_listener`](crate::add_decision_listener) and
/// [`observe_decisions`](crate::observe_decisions); a scope's own
/// [`RunBuilder::on_decision`](crate::RunBuilder::on_decision) is not
/// global and is unaffected). With the `process-backend` feature, a
/// process call already sent to a worker through the shared default is
/// not waited for and not cancelled: it keeps its worker, its reply is
/// read on a thread of its own, and its handle, joined or not yet, still
/// gives its result (see
/// `ProcessPool::retire`); a call
/// whose reply a thread is reading at that moment (a `join` in progress,
/// or a call running on the blocking lane) is cancelled with its worker,
/// and one still queued for a worker resolves to cancelled. Then the
/// shared process pool behind `Handle::call` is shut down, the fork server started by
/// `unirun::process::init` is stopped, and the `unirun-forker` thread ends
/// once no scope's pool still holds it. With the `tokio-backend` feature,
/// unirun's own tokio runtime and its `unirun-io` thread (see
/// [`crate::io`]) stop the same way: joined here unless a scope of your own
/// still holds them; the next thread pool starts them again.
///
/// Handles to the old default executor, and scopes that borrowed it
/// (`Flavor::Shared`), cancel what they spawn afterwards.
/// Tests that call `reset` run in parallel with the rest of their binary,
/// so they should hold a lock that every test touching global state takes,
/// or run in a child process.
///
/// # Examples
///
/// ```
/// let before = unirun::get_executor();
/// unirun::reset();
/// assert!(unirun::last_decision().is_none());
/// let after = unirun::get_executor(); // a new pool, decided again
/// assert_eq!(after.spawn(async { 1 }).join().unwrap(), 1);
/// assert!(before.spawn(async { 1 }).join().unwrap_err().is_cancelled());
/// ```
pub fn reset() {
    COMPAT.store(0, Ordering::Release);
    crate::observe::reset();
    let (old, old_state) = with_state(|s| {
        let old = s.default.take();
        let old_state = std::mem::take(s);
        GENERATION.fetch_add(1, Ordering::AcqRel);
        (old, old_state)
    });
    scheduler::reset_listeners();
    // Calls already sent go on without the old default (see `configure`);
    // the rest of its process pools stops (their forker thread and idle
    // workers; the scope's pool below, with the scope's children).
    let scope = old.as_ref().and_then(|old| old.scope.as_ref());
    retire_process_pools(old_state.processes.as_ref(), scope);
    if let Some(pool) = &old_state.processes {
        pool.shutdown_now();
    }
    drop(old_state);
    if let Some(old) = old {
        if let Some(scope) = &old.scope {
            scope.tasks.close();
        }
        // Forked children would keep their waiting lane threads busy.
        backend::process::cancel_handle_children(&old.handle);
        old.owned.shutdown_now();
    }
    // The shared process pool, the fork server and the forker thread.
    backend::process::reset_processes();
    let _ = CACHED.try_with(|c| c.replace(None));
    crate::time::reset_driver();
}

/// The capabilities the scheduler sizes pools from: CPU budget, backends
/// compiled in, ambient runtime and suggested worker counts. Detected once
/// and cached until [`reset`].
///
/// # Examples
///
/// ```
/// let caps = unirun::capabilities();
/// println!("{} CPUs, backends {:?}", caps.cpu_budget(), caps.backends());
/// ```
pub fn capabilities() -> Capabilities {
    with_state(State::caps)
}

/// Spawns a future "here", like `tokio::spawn`: inside a [`Run`](crate::Run)
/// scope's task, blocking closure or `block_on`, the task joins that scope
/// (its workers run it and its shutdown waits for it); anywhere else it
/// goes to the shared default executor.
///
/// [`Handle::current`] names the same executor;
/// [`get_executor().spawn(..)`](get_executor) always picks the shared
/// default.
///
/// # Examples
///
/// ```
/// let handle = unirun::spawn(async { 6 * 7 });
/// assert_eq!(unirun::block_on(handle).unwrap(), 42);
///
/// let run = unirun::Run::builder().name("here").build()?;
/// let name = run.block_on(async {
///     unirun::spawn(async { std::thread::current().name().map(String::from) }).await
/// });
/// assert!(name.unwrap().unwrap().starts_with("here-"));
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Borrowed, not counted: the spawn path touches no shared count.
    match crate::scope::with_current_spawn(future) {
        Ok(handle) => handle,
        Err(future) => get_executor().spawn(future),
    }
}

/// Runs a blocking closure "here" and returns a handle to await
/// (`asyncio.to_thread`, `spawn_blocking`): on the blocking lane of the
/// [`Run`](crate::Run) scope whose task, closure or `block_on` calls it,
/// else on the shared default executor's.
///
/// # Examples
///
/// ```
/// let len = unirun::to_thread(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0));
/// let len = unirun::block_on(len).unwrap();
/// assert!(len > 0);
/// ```
pub fn to_thread<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match crate::scope::current() {
        Some(scope) => scope.spawn_blocking(f),
        None => get_executor().spawn_blocking(f),
    }
}

/// Runs a blocking closure on `executor`'s blocking lane, or on the shared
/// default executor's with `None` (`loop.run_in_executor(executor, f)`).
///
/// # Examples
///
/// ```
/// let run = unirun::Run::builder().name("io").build()?;
/// let mine = unirun::run_in_executor(Some(&run.handle()), || std::thread::current().name().map(String::from));
/// let shared = unirun::run_in_executor(None, || 2 + 2);
/// assert!(mine.join().unwrap().unwrap().starts_with("io-blocking-"));
/// assert_eq!(shared.join().unwrap(), 4);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn run_in_executor<F, R>(executor: Option<&Handle>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match executor {
        Some(handle) => handle.spawn_blocking(f),
        None => to_thread(f),
    }
}

/// The mode of the compat modules: `UNIRUN_COMPAT_MODE` (a kill switch, it
/// wins), else what [`configure`] set, else managed. Read once, and again
/// after [`reset`] or [`configure`]; an invalid value is reported once and
/// means managed.
pub(crate) fn compat_mode() -> CompatMode {
    match COMPAT.load(Ordering::Acquire) {
        MANAGED => return CompatMode::Managed,
        PASSTHROUGH => return CompatMode::Passthrough,
        _ => {}
    }
    let (mode, from) = with_state(|s| {
        let env = s.env();
        scheduler::compat_mode(&s.config, &env.config)
    });
    let code = match mode {
        CompatMode::Passthrough => PASSTHROUGH,
        _ => MANAGED,
    };
    COMPAT.store(code, Ordering::Release);
    // Said once per process, and again only when it changes: threads that
    // read it at the same time, and re-reads after `reset`, stay quiet.
    if COMPAT_SAID.swap(code, Ordering::AcqRel) != code {
        crate::observe::compat_mode(mode, &from);
    }
    mode
}
