//! The scheduler: which backend a scope or the shared default runs on, how
//! big it is, and why ([`DecisionTrace`]). Also [`Capabilities`] and the
//! decision listeners.
//!
//! Resolution order (docs/design.md, "Choosing a backend"), first match
//! wins, each step a [`Reason`]:
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

mod capabilities;
mod listeners;
pub(crate) mod resolve;
#[cfg(test)]
mod tests;

pub use self::capabilities::Capabilities;
pub use self::listeners::{
    add_decision_listener, last_decision, observe_decisions, remove_decision_listener, ListenerId,
    ObserveDecisions,
};
pub(crate) use self::listeners::{publish, reset as reset_listeners};
pub(crate) use self::resolve::compat_mode;
use self::resolve::resolve;
use crate::config::RuntimeConfig;
use crate::env::{RejectedVar, FORCE_PROCESS, FORCE_THREADS, MODE};
use crate::error::Error;
use crate::flavor::{Flavor, ThreadMode};
use crate::trace::{DecisionTrace, Fallback, Hints, Reason, Workers};

/// The environment as the implicit paths read it: lenient, once per reset.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvSnapshot {
    pub(crate) config: RuntimeConfig,
    pub(crate) rejected: Vec<RejectedVar>,
}

/// What a scope (or the shared default) asks for.
pub(crate) struct Request {
    pub(crate) requested: Flavor,
    /// Settings made in code for this scope.
    pub(crate) code: RuntimeConfig,
    /// Settings made in code with `configure()`.
    pub(crate) configured: RuntimeConfig,
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
    /// A new thread pool of this size for `spawn` and `spawn_blocking`,
    /// and a connection to the cluster's server for `call` (the builder
    /// connects it).
    Cluster {
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
    let code = req.code.clone().merged_over(&req.configured);
    let explicit_cap = code.max_workers.is_some() || code.max_blocking.is_some();
    let (config, applied) = resolve(&req.code, &req.configured, &env.config);
    let from_env = |var: &str| applied.iter().any(|o| o.var() == var);
    let thread_mode = match config.thread_mode {
        Some(ThreadMode::Gil) => ThreadMode::Gil,
        _ => ThreadMode::Nogil,
    };

    let mut reasons = Vec::new();
    let mut fallbacks = Vec::new();
    // Turns an unavailable flavor into an error, or for implicit paths into
    // threads plus a fallback record.
    // A flavor the environment names never fails a build either: the
    // environment is the operator's, the build is the developer's.
    let available = |flavor: Flavor,
                     env_var: Option<&str>,
                     fallbacks: &mut Vec<Fallback>|
     -> Result<Flavor, Error> {
        match caps.ensure(flavor) {
            Ok(flavor) => Ok(flavor),
            Err(err) if req.implicit || env_var.is_some() => {
                let cause = match env_var {
                    Some(var) => format!("{var}={flavor}, but {err}"),
                    None => err.to_string(),
                };
                fallbacks.push(Fallback::new(flavor, Flavor::Threads, cause));
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
            match caps.ensure(forced) {
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
        caps.ensure(req.requested)?
    } else if config.auto == Some(false) {
        reasons.push(Reason::AutoDisabled);
        Flavor::Shared
    } else if let Some(flavor) = config.flavor.filter(|f| *f != Flavor::Auto) {
        let from_env = from_env(MODE.name);
        reasons.push(Reason::ConfigFlavor { flavor, from_env });
        available(flavor, from_env.then_some(MODE.name), &mut fallbacks)?
    } else if req.ambient_tokio && !req.implicit && Flavor::Tokio.is_available() {
        reasons.push(Reason::AmbientTokio);
        Flavor::Tokio
    } else if config.cpu_bound == Some(true) && thread_mode == ThreadMode::Gil {
        // Serialized CPU work would use one core; processes sidestep the
        // lock.
        reasons.push(Reason::CpuBoundGil);
        match caps.ensure(Flavor::Processes) {
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

    let cap = |n: usize| config.max_workers.map_or(n, |max| n.min(max));
    let blocking = if config.io_bound == Some(true) {
        caps.suggested_io_workers()
    } else {
        caps.default_blocking()
    };
    // Separate caps: `max_workers` never shrinks the blocking lane.
    let blocking = config
        .max_blocking
        .map_or(blocking, |max| blocking.min(max));
    let own_workers = Workers::new(cap(caps.suggested_cpu_workers()), blocking);

    // The shared default is one pool for every thread: it runs on threads.
    let resolved = match resolved {
        Flavor::Tokio | Flavor::Smol | Flavor::Cluster if req.implicit => {
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
            Flavor::Cluster => Plan::Cluster {
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
        .with_hints(Hints::new(config.cpu_bound, config.io_bound))
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
