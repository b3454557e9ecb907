//! The scheduler: which backend a scope or the shared default runs on, how
//! big it is, and why ([`DecisionTrace`]). Also [`Capabilities`] and the
//! decision listeners.
//!
//! Resolution order (DESIGN §5), first match wins, each step a [`Reason`]:
//!
//! 1. the caller supplied an executor: `Provided`;
//! 2. `force_threads`: Threads; `force_process`: Processes, or Threads with a
//!    fallback when the process backend is not compiled in;
//! 3. an explicit flavor: that flavor (an error if its feature is off);
//! 4. `auto = false`: the shared pool;
//! 5. the configured flavor (code or `UNIRUN_MODE`) for `Auto`;
//! 6. inside a tokio runtime with `tokio-backend`: Tokio (ambient);
//! 7. `cpu_bound` in `Gil` mode with processes available: Processes;
//! 8. otherwise Threads (`Default`).
//!
//! A scope that resolves to Threads inside a running scope whose backend is
//! a thread pool, and that sets no name or worker cap of its own, reuses the
//! parent's backend (`ReusedParent`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::RuntimeConfig;
use crate::env::{RejectedVar, FORCE_PROCESS, FORCE_THREADS, MODE};
use crate::error::Error;
use crate::flavor::{Flavor, ThreadMode};
use crate::trace::{DecisionTrace, Fallback, Hints, Reason, Workers};

/// I/O-bound lanes: more threads may wait on I/O at once.
const IO_BLOCKING_PER_CPU: usize = 64;
const MIN_IO_BLOCKING: usize = 256;

/// What this machine and build offer the scheduler: the CPU budget, the
/// backends compiled in, an ambient runtime, and the pool sizes suggested
/// for each kind of work.
///
/// Detected on first use and cached until [`reset`](crate::reset); get it
/// with [`capabilities`](crate::capabilities).
///
/// # Examples
///
/// ```
/// use unirun::Flavor;
///
/// let caps = unirun::capabilities();
/// assert!(caps.cpu_budget() >= 1);
/// assert!(caps.backends().contains(&Flavor::Threads));
/// assert_eq!(caps.suggested_cpu_workers(), caps.cpu_budget());
/// assert!(caps.suggested_io_workers() > caps.suggested_cpu_workers());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    cpu_budget: usize,
    backends: Vec<Flavor>,
    ambient_runtime: Option<Flavor>,
    suggested_cpu_workers: usize,
    suggested_io_workers: usize,
    suggested_process_workers: usize,
}

impl Capabilities {
    pub(crate) fn detect() -> Self {
        Self::from_budget(unirun_platform::cpu_budget().available)
    }

    pub(crate) fn from_budget(cpu_budget: usize) -> Self {
        let cpu_budget = cpu_budget.max(1);
        let backends = [
            Flavor::Threads,
            Flavor::Shared,
            Flavor::Processes,
            Flavor::Smol,
            Flavor::Tokio,
        ]
        .into_iter()
        .filter(|f| f.is_available())
        .collect();
        Capabilities {
            cpu_budget,
            backends,
            // Per thread: see `ambient_runtime()`.
            ambient_runtime: None,
            suggested_cpu_workers: cpu_budget,
            suggested_io_workers: (cpu_budget * IO_BLOCKING_PER_CPU).max(MIN_IO_BLOCKING),
            suggested_process_workers: cpu_budget,
        }
    }

    /// CPUs this process may use: online CPUs, narrowed by the affinity mask
    /// and cgroup v1/v2 CPU quotas (a container limited to 2 CPUs on a
    /// 64-core host gets 2).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun::capabilities().cpu_budget() >= 1);
    /// ```
    pub fn cpu_budget(&self) -> usize {
        self.cpu_budget
    }

    /// The flavors this build can run (`Threads` and `Shared` always, with
    /// the default `std` feature).
    ///
    /// # Examples
    ///
    /// ```
    /// let caps = unirun::capabilities();
    /// assert!(caps.backends().contains(&unirun::Flavor::Shared));
    /// ```
    pub fn backends(&self) -> &[Flavor] {
        &self.backends
    }

    /// The runtime the calling thread runs inside, when unirun can borrow
    /// it: a tokio runtime, with `tokio-backend`. Checked on each call, since
    /// it depends on the calling thread.
    ///
    /// # Examples
    ///
    /// ```
    /// // Outside any runtime:
    /// assert_eq!(unirun::capabilities().ambient_runtime(), None);
    /// ```
    pub fn ambient_runtime(&self) -> Option<Flavor> {
        self.ambient_runtime.or_else(|| {
            crate::backend::ambient_tokio()
                .is_some()
                .then_some(Flavor::Tokio)
        })
    }

    /// Worker threads for CPU-bound work: the CPU budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let caps = unirun::capabilities();
    /// assert_eq!(caps.suggested_cpu_workers(), caps.cpu_budget());
    /// ```
    pub fn suggested_cpu_workers(&self) -> usize {
        self.suggested_cpu_workers
    }

    /// Blocking-lane cap for I/O-bound work: 64 per CPU, at least 256
    /// (threads that mostly wait cost little).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun::capabilities().suggested_io_workers() >= 256);
    /// ```
    pub fn suggested_io_workers(&self) -> usize {
        self.suggested_io_workers
    }

    /// Worker processes for a process pool: the CPU budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let caps = unirun::capabilities();
    /// assert_eq!(caps.suggested_process_workers(), caps.cpu_budget());
    /// ```
    pub fn suggested_process_workers(&self) -> usize {
        self.suggested_process_workers
    }

    /// The blocking-lane cap for work with no I/O hint.
    pub(crate) fn default_blocking(&self) -> usize {
        unirun_threads::default_blocking_cap(self.cpu_budget)
    }
}

/// The environment as the implicit paths read it: lenient, once per reset.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvSnapshot {
    pub(crate) config: RuntimeConfig,
    pub(crate) rejected: Vec<RejectedVar>,
}

/// What a scope (or the shared default) asks for.
pub(crate) struct Request {
    pub(crate) requested: Flavor,
    /// Settings made in code: the scope's config over `configure()`'s.
    pub(crate) code: RuntimeConfig,
    pub(crate) name: Option<String>,
    pub(crate) provided: bool,
    /// The flavor of the provided executor (threads when unknown).
    pub(crate) provided_flavor: Flavor,
    /// The shared default: never fails, falls back instead.
    pub(crate) implicit: bool,
    /// The caller runs inside a tokio runtime unirun can borrow.
    pub(crate) ambient_tokio: bool,
}

/// The running scope a new one is nested in, as the scheduler sees it.
pub(crate) struct Parent {
    pub(crate) workers: Workers,
    pub(crate) name: String,
}

/// Where the work goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The caller's executor.
    Provided,
    /// The shared default pool.
    Shared,
    /// The parent scope's backend.
    Reuse,
    /// A new thread pool of this size.
    Threads {
        workers: usize,
        blocking_cap: usize,
        name: String,
    },
    /// The tokio runtime the caller runs in.
    AmbientTokio,
    /// A new multi-thread tokio runtime of this size.
    Tokio {
        workers: usize,
        blocking_cap: usize,
        name: String,
    },
    /// A new thread pool of this size for `spawn` and `spawn_blocking`,
    /// and a pre-forked process pool as wide for `call` and `to_process`.
    Processes {
        workers: usize,
        blocking_cap: usize,
        name: String,
    },
    /// A new async-executor driven by this many threads.
    Smol {
        workers: usize,
        blocking_cap: usize,
        name: String,
    },
}

pub(crate) struct Decision {
    pub(crate) plan: Plan,
    pub(crate) thread_mode: ThreadMode,
    pub(crate) config: RuntimeConfig,
    pub(crate) trace: DecisionTrace,
}

pub(crate) const DEFAULT_NAME: &str = "unirun";

/// Resolves `req` against the environment, the machine and the parent scope.
pub(crate) fn decide(
    req: Request,
    env: &EnvSnapshot,
    caps: &Capabilities,
    parent: Option<&Parent>,
) -> Result<Decision, Error> {
    req.code.validate()?;
    let explicit_name = req.name.is_some();
    let explicit_cap = req.code.get_max_workers().is_some();
    let (config, applied) = req.code.apply_env(&env.config);
    let from_env = |var: &str| applied.iter().any(|o| o.var() == var);
    let thread_mode = match config.get_thread_mode() {
        Some(ThreadMode::Gil) => ThreadMode::Gil,
        _ => ThreadMode::Nogil,
    };

    let mut reasons = Vec::new();
    let mut fallbacks = Vec::new();
    // Turns an unavailable flavor into an error, or for implicit paths into
    // threads plus a fallback record.
    let available = |flavor: Flavor, fallbacks: &mut Vec<Fallback>| -> Result<Flavor, Error> {
        match flavor.ensure_available() {
            Ok(flavor) => Ok(flavor),
            Err(err) if req.implicit => {
                fallbacks.push(Fallback::new(flavor, Flavor::Threads, err.to_string()));
                Ok(Flavor::Threads)
            }
            Err(err) => Err(err),
        }
    };

    let resolved = if req.provided {
        reasons.push(Reason::Provided);
        req.provided_flavor
    } else if let Some(forced) = config.forced_flavor() {
        if forced == Flavor::Threads {
            let var = from_env(FORCE_THREADS.name).then_some(FORCE_THREADS.name);
            reasons.push(Reason::ForcedThreads { var });
            Flavor::Threads
        } else {
            let var = from_env(FORCE_PROCESS.name).then_some(FORCE_PROCESS.name);
            reasons.push(Reason::ForcedProcess { var });
            match forced.ensure_available() {
                Ok(flavor) => flavor,
                Err(err) => {
                    reasons.push(Reason::ForcedProcessFallback);
                    fallbacks.push(Fallback::new(forced, Flavor::Threads, err.to_string()));
                    Flavor::Threads
                }
            }
        }
    } else if req.requested != Flavor::Auto {
        reasons.push(Reason::Explicit {
            flavor: req.requested,
        });
        req.requested.ensure_available()?
    } else if config.get_auto() == Some(false) {
        reasons.push(Reason::AutoDisabled);
        Flavor::Shared
    } else if let Some(flavor) = config.get_flavor().filter(|f| *f != Flavor::Auto) {
        reasons.push(Reason::ConfigFlavor {
            flavor,
            from_env: from_env(MODE.name),
        });
        available(flavor, &mut fallbacks)?
    } else if req.ambient_tokio && !req.implicit && Flavor::Tokio.is_available() {
        reasons.push(Reason::AmbientTokio);
        Flavor::Tokio
    } else if config.get_cpu_bound() == Some(true) && thread_mode == ThreadMode::Gil {
        // Serialized CPU work would use one core; processes sidestep the
        // lock.
        reasons.push(Reason::CpuBoundGil);
        match Flavor::Processes.ensure_available() {
            Ok(flavor) => flavor,
            Err(err) => {
                fallbacks.push(Fallback::new(
                    Flavor::Processes,
                    Flavor::Threads,
                    err.to_string(),
                ));
                Flavor::Threads
            }
        }
    } else {
        reasons.push(Reason::Default);
        Flavor::Threads
    };

    let cap = |n: usize| config.get_max_workers().map_or(n, |max| n.min(max));
    let blocking = if config.get_io_bound() == Some(true) {
        caps.suggested_io_workers()
    } else {
        caps.default_blocking()
    };
    let own_workers = Workers::new(cap(caps.suggested_cpu_workers()), cap(blocking));

    // The shared default is one pool for every thread: it runs on threads.
    let resolved = match resolved {
        Flavor::Tokio | Flavor::Smol if req.implicit => {
            fallbacks.push(Fallback::new(
                resolved,
                Flavor::Threads,
                "the shared default executor is a thread pool".to_string(),
            ));
            Flavor::Threads
        }
        other => other,
    };
    let ambient = !req.provided && resolved == Flavor::Tokio && req.ambient_tokio;
    if ambient && !reasons.contains(&Reason::AmbientTokio) {
        reasons.push(Reason::AmbientTokio);
    }

    let (plan, workers, name) = if req.provided {
        (Plan::Provided, None, req.name)
    } else if resolved == Flavor::Shared && !req.implicit {
        (Plan::Shared, None, req.name)
    } else if let (Flavor::Threads, Some(parent), false, false, false) =
        (resolved, parent, explicit_name, explicit_cap, req.implicit)
    {
        reasons.push(Reason::ReusedParent);
        (Plan::Reuse, Some(parent.workers), Some(parent.name.clone()))
    } else if ambient {
        (Plan::AmbientTokio, None, req.name)
    } else {
        let name = req.name.unwrap_or_else(|| DEFAULT_NAME.to_string());
        let (workers, blocking_cap) = (own_workers.cpu(), own_workers.blocking_cap());
        let plan = match resolved {
            Flavor::Tokio => Plan::Tokio {
                workers,
                blocking_cap,
                name: name.clone(),
            },
            Flavor::Smol => Plan::Smol {
                workers,
                blocking_cap,
                name: name.clone(),
            },
            Flavor::Processes => Plan::Processes {
                workers,
                blocking_cap,
                name: name.clone(),
            },
            _ => Plan::Threads {
                workers,
                blocking_cap,
                name: name.clone(),
            },
        };
        (plan, Some(own_workers), Some(name))
    };

    let mut reasons = reasons.into_iter();
    let first = reasons.next().unwrap_or(Reason::Default);
    let mut trace = DecisionTrace::new(req.requested, resolved, first);
    for reason in reasons {
        trace = trace.with_reason(reason);
    }
    for fallback in fallbacks {
        trace = trace.with_fallback(fallback);
    }
    trace = trace
        .with_thread_mode(thread_mode)
        .with_hints(Hints::new(config.get_cpu_bound(), config.get_io_bound()))
        .with_env_applied(applied)
        .with_env_rejected(env.rejected.clone());
    if let Some(workers) = workers {
        trace = trace.with_workers(workers);
    }
    if let Some(name) = name {
        trace = trace.with_name(name);
    }
    if resolved == Flavor::Processes {
        // What a fork copies: only one of these threads exists in a child.
        if let Some(threads) = unirun_platform::thread_count() {
            trace = trace.with_parent_threads(threads);
        }
    }
    Ok(Decision {
        plan,
        thread_mode,
        config,
        trace,
    })
}

type Listener = Arc<dyn Fn(&DecisionTrace) + Send + Sync>;

/// Identifies a listener added with [`add_decision_listener`], for
/// [`remove_decision_listener`].
///
/// # Examples
///
/// ```
/// let id = unirun::add_decision_listener(|_| {});
/// assert!(unirun::remove_decision_listener(id));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

static LISTENERS: Mutex<Vec<(ListenerId, Listener)>> = Mutex::new(Vec::new());
static NEXT_LISTENER: AtomicU64 = AtomicU64::new(1);
static LAST: Mutex<Option<DecisionTrace>> = Mutex::new(None);

/// Calls `listener` with every scheduling decision from now on: each
/// [`Run`](crate::Run) built and each time the shared default executor is
/// (re)created.
///
/// Listeners run synchronously on the thread that decided, before the scope
/// starts. A listener that panics is isolated: the panic is caught, the
/// other listeners still run and the decision stands.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// let id = unirun::add_decision_listener(move |trace| {
///     sink.lock().unwrap().push(trace.resolved());
/// });
/// let run = unirun::Run::new(unirun::Flavor::Threads)?;
/// unirun::remove_decision_listener(id);
/// assert!(seen.lock().unwrap().contains(&unirun::Flavor::Threads));
/// # drop(run);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn add_decision_listener(
    listener: impl Fn(&DecisionTrace) + Send + Sync + 'static,
) -> ListenerId {
    let id = ListenerId(NEXT_LISTENER.fetch_add(1, Ordering::Relaxed));
    listeners().push((id, Arc::new(listener)));
    id
}

/// Removes a listener; returns whether it was there.
///
/// # Examples
///
/// ```
/// let id = unirun::add_decision_listener(|trace| println!("{trace}"));
/// assert!(unirun::remove_decision_listener(id));
/// assert!(!unirun::remove_decision_listener(id));
/// ```
pub fn remove_decision_listener(id: ListenerId) -> bool {
    let mut listeners = listeners();
    let before = listeners.len();
    listeners.retain(|(other, _)| *other != id);
    listeners.len() != before
}

/// The most recent scheduling decision in this process, if any since start
/// or the last [`reset`](crate::reset).
///
/// # Examples
///
/// ```
/// let run = unirun::Run::new(unirun::Flavor::Threads)?;
/// let last = unirun::last_decision().expect("a decision was made");
/// // Other threads may have decided since; this one is at least a trace.
/// assert!(!last.reasons().is_empty());
/// # drop(run);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn last_decision() -> Option<DecisionTrace> {
    LAST.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Logs every scheduling decision to stderr, one line each, while the
/// returned guard lives.
///
/// # Examples
///
/// ```
/// let _logging = unirun::observe_decisions();
/// let run = unirun::Run::new(unirun::Flavor::Threads)?; // prints "unirun: threads ..."
/// # drop(run);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn observe_decisions() -> ObserveDecisions {
    ObserveDecisions {
        id: add_decision_listener(|trace| eprintln!("{trace}")),
    }
}

/// Guard returned by [`observe_decisions`]: logging stops when it drops.
///
/// # Examples
///
/// ```
/// let guard = unirun::observe_decisions();
/// drop(guard); // stops logging
/// ```
#[derive(Debug)]
#[must_use = "decisions are logged only while the guard lives"]
pub struct ObserveDecisions {
    id: ListenerId,
}

impl Drop for ObserveDecisions {
    fn drop(&mut self) {
        remove_decision_listener(self.id);
    }
}

fn listeners() -> std::sync::MutexGuard<'static, Vec<(ListenerId, Listener)>> {
    LISTENERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records `trace` as the last decision and tells the scope's own listener
/// and every global one. Call with no unirun lock held: listeners may call
/// back into unirun.
pub(crate) fn publish(trace: &DecisionTrace, own: Option<&Listener>) {
    *LAST.lock().unwrap_or_else(PoisonError::into_inner) = Some(trace.clone());
    let global: Vec<Listener> = listeners().iter().map(|(_, l)| l.clone()).collect();
    for listener in own.into_iter().chain(global.iter()) {
        // Isolated: the panic message still prints through the panic hook.
        let _ = catch_unwind(AssertUnwindSafe(|| listener(trace)));
    }
}

pub(crate) fn clear_last() {
    *LAST.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(requested: Flavor, code: RuntimeConfig) -> Request {
        Request {
            requested,
            code,
            name: None,
            provided: false,
            provided_flavor: Flavor::Threads,
            implicit: false,
            ambient_tokio: false,
        }
    }

    fn caps() -> Capabilities {
        Capabilities::from_budget(4)
    }

    #[test]
    fn sizing_follows_hints_and_caps() {
        let env = EnvSnapshot::default();
        let d = decide(
            request(Flavor::Auto, RuntimeConfig::default()),
            &env,
            &caps(),
            None,
        )
        .unwrap();
        assert_eq!(
            d.plan,
            Plan::Threads {
                workers: 4,
                blocking_cap: 64,
                name: "unirun".into()
            }
        );
        let io = RuntimeConfig::default().io_bound(true);
        let d = decide(request(Flavor::Auto, io.clone()), &env, &caps(), None).unwrap();
        assert_eq!(d.trace.workers(), Some(Workers::new(4, 256)));
        let capped = io.max_workers(3);
        let d = decide(request(Flavor::Auto, capped), &env, &caps(), None).unwrap();
        assert_eq!(d.trace.workers(), Some(Workers::new(3, 3)));
    }

    #[test]
    fn implicit_paths_fall_back_instead_of_failing() {
        let env = EnvSnapshot {
            config: RuntimeConfig::default().flavor(Flavor::Smol),
            rejected: Vec::new(),
        };
        let mut req = request(Flavor::Auto, RuntimeConfig::default());
        assert!(matches!(
            decide(req, &env, &caps(), None),
            Err(Error::BackendUnavailable { .. }) | Ok(_)
        ));
        req = request(Flavor::Auto, RuntimeConfig::default());
        req.implicit = true;
        let d = decide(req, &env, &caps(), None).unwrap();
        if !Flavor::Smol.is_available() {
            assert_eq!(d.trace.resolved(), Flavor::Threads);
            assert_eq!(d.trace.fallbacks()[0].from(), Flavor::Smol);
        }
    }
}
