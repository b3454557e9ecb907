//! [`RunBuilder`]: the settings of a [`Run`] scope, and where the scheduler
//! turns them into a backend.

use std::fmt;
use std::sync::Arc;

use super::Run;
use crate::backend;
use crate::config::RuntimeConfig;
use crate::error::Error;
use crate::flavor::Flavor;
use crate::global;
use crate::scheduler::{self, Parent, Plan, Request};
use crate::scope::{self, ScopeState};
use crate::trace::DecisionTrace;
use crate::Handle;

type Listener = Arc<dyn Fn(&DecisionTrace) + Send + Sync>;

/// Settings for a [`Run`] scope; [`build`](Self::build) asks the scheduler
/// for a backend.
///
/// Settings made here are "code": they win over [`configure`](crate::configure)'s
/// process-wide settings, which win over the `UNIRUN_*` environment; the
/// environment fills what neither sets, and its kill switches
/// (`UNIRUN_FORCE_THREADS`, `UNIRUN_FORCE_PROCESS`, `UNIRUN_COMPAT_MODE`)
/// apply always. Invalid environment values are ignored, printed once on
/// stderr and recorded in the trace (the scope still builds).
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, Run, RuntimeConfig, ThreadMode};
///
/// let run = Run::builder()
///     .flavor(Flavor::Threads)
///     .config(RuntimeConfig::default().io_bound(true).thread_mode(ThreadMode::Gil))
///     .name("ingest")
///     .max_workers(4)
///     .on_decision(|trace| eprintln!("{trace}"))
///     .build()?;
/// assert_eq!(run.trace().resolved(), Flavor::Threads);
/// assert_eq!(run.trace().workers().unwrap().cpu().min(4), run.trace().workers().unwrap().cpu());
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RunBuilder {
    flavor: Flavor,
    config: Option<RuntimeConfig>,
    name: Option<String>,
    /// What the builder's own setters (`max_workers`, `max_blocking`) set,
    /// in the same settings type as `config`, over which it is layered.
    limits: RuntimeConfig,
    executor: Option<Handle>,
    on_decision: Option<Listener>,
    pub(crate) process_options: Option<backend::ProcessOptions>,
    pub(crate) cluster_options: Option<backend::cluster::ClusterOptions>,
}

impl RunBuilder {
    /// The execution model: `Auto` (the default) lets the scheduler decide;
    /// any other flavor is used as asked, or `build` fails with
    /// [`Error::BackendUnavailable`] naming the cargo feature to enable.
    /// `Shared` borrows the shared default pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Error, Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Shared).build()?;
    /// assert_eq!(run.trace().resolved(), Flavor::Shared);
    /// if !Flavor::Smol.is_available() {
    ///     let err = Run::builder().flavor(Flavor::Smol).build().unwrap_err();
    ///     assert!(matches!(err, Error::BackendUnavailable { feature: "smol-backend", .. }));
    /// }
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Settings for this scope (hints, thread mode, worker cap, ...); see
    /// [`RuntimeConfig`]. Replaces an earlier `config` call.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Run, RuntimeConfig, ThreadMode};
    ///
    /// let run = Run::builder().config(RuntimeConfig::default().thread_mode(ThreadMode::Gil)).build()?;
    /// assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Names the scope: its threads are `{name}-{i}` and
    /// `{name}-blocking-{i}`. Defaults to `unirun`. A named scope does not
    /// reuse its parent scope's pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("ingest").build()?;
    /// let thread = run.spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(thread.join().unwrap().unwrap().starts_with("ingest-blocking-"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Caps the async workers the scheduler picks (not the blocking lane:
    /// see [`max_blocking`](Self::max_blocking)); wins over the config's
    /// `max_workers`. `0` fails at [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// assert!(run.handle().num_workers() <= 2);
    /// let err = unirun::Run::builder().max_workers(0).build().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid max_workers=0: expected an integer >= 1");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.limits = self.limits.max_workers(max_workers);
        self
    }

    /// Caps the scope's blocking lane (`spawn_blocking`, `map`); wins over
    /// the config's `max_blocking`. `0` fails at [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(1).max_blocking(3).build()?;
    /// assert_eq!(run.handle().max_blocking_threads(), 3);
    /// assert_eq!(run.handle().num_workers(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn max_blocking(mut self, max_blocking: usize) -> Self {
        self.limits = self.limits.max_blocking(max_blocking);
        self
    }

    /// Borrows an existing executor instead of starting one: the scope's
    /// tasks run there, the scope waits for them at shutdown, and never shuts
    /// the executor down. The trace says `provided`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, Run};
    ///
    /// let outer = Run::builder().name("outer").build()?;
    /// let inner = Run::builder().executor(outer.handle()).build()?;
    /// assert_eq!(inner.trace().reason(), &Reason::Provided);
    /// inner.shutdown();
    /// assert_eq!(outer.spawn(async { "still running" }).join().unwrap(), "still running");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn executor(mut self, handle: Handle) -> Self {
        self.executor = Some(handle);
        self
    }

    /// Calls `listener` with this scope's [`DecisionTrace`] when it is built,
    /// before the global listeners. A panic in it is caught.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(String::new()));
    /// let sink = seen.clone();
    /// let run = unirun::Run::builder()
    ///     .on_decision(move |trace| *sink.lock().unwrap() = trace.to_string())
    ///     .build()?;
    /// assert!(seen.lock().unwrap().starts_with("unirun: "));
    /// # drop(run);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn on_decision(
        mut self,
        listener: impl Fn(&DecisionTrace) + Send + Sync + 'static,
    ) -> Self {
        self.on_decision = Some(Arc::new(listener));
        self
    }

    /// Decides the backend (see [`Run`] for the order of the rules), starts
    /// it if the scope owns one, tells the listeners, and returns the scope.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidSetting`] naming `max_workers` for `max_workers(0)`;
    /// - [`Error::BackendUnavailable`] for a flavor (asked for here, in
    ///   [`configure`](crate::configure) or in `UNIRUN_MODE`) whose cargo
    ///   feature is off;
    /// - [`Error::Io`] when the OS refuses to start a worker thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.block_on(async { 1 + 1 }), 2);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn build(self) -> Result<Run, Error> {
        let snapshot = global::snapshot();
        // The builder's limits win over its config; the config fills the rest.
        let code = self.limits.merged_over(&self.config.unwrap_or_default());
        let parent = match self.executor {
            Some(_) => None,
            None => scope::current().filter(|s| s.reusable),
        };
        let parent_info = parent.as_ref().map(|p| Parent {
            workers: p.backend.workers(),
            name: p.backend.name().to_string(),
        });
        let request = Request {
            requested: self.flavor,
            code,
            configured: snapshot.config.clone(),
            name: self.name,
            provided: self.executor.is_some(),
            provided_flavor: self
                .executor
                .as_ref()
                .map_or(Flavor::Threads, Handle::flavor),
            implicit: false,
            ambient_tokio: backend::ambient_tokio().is_some(),
        };
        let decision =
            scheduler::decide(request, &snapshot.env, &snapshot.caps, parent_info.as_ref())?;
        let mut trace = decision.trace;
        // Connected before any thread starts, so an unreachable server
        // leaves nothing to tear down.
        let cluster = match decision.plan {
            Plan::Cluster { .. } => {
                let (client, traced) = backend::cluster::connect(self.cluster_options, trace)?;
                trace = traced;
                Some(client)
            }
            _ => None,
        };
        let process_options = self.process_options.unwrap_or_default();
        let started = backend::start(&decision.plan, process_options)?;
        let (backend, owned) = match (started, decision.plan, self.executor, parent) {
            (Some(started), ..) => {
                if let Some(pool) = started
                    .processes
                    .as_ref()
                    .filter(|_| trace.resolved() != Flavor::Cluster)
                {
                    // Created now (its workers start on the first call) so
                    // the trace can say where they will come from.
                    trace = trace.with_process_pool(pool.origin());
                }
                (started.backend.clone(), Some(started))
            }
            (None, Plan::Provided, Some(handle), _) => (handle.backend().clone(), None),
            (None, Plan::Reuse, _, Some(parent)) => (parent.backend.clone(), None),
            (None, Plan::AmbientTokio, _, _) => match backend::ambient_tokio() {
                Some(backend) => {
                    trace = trace.with_workers(backend.workers());
                    (backend, None)
                }
                None => unreachable!("the scheduler saw an ambient runtime on this thread"),
            },
            // `Shared`, and the unreachable mismatches (a plan without what
            // it borrows) resolve to the shared pool rather than fail.
            _ => {
                let backend = global::get_executor().backend().clone();
                trace = trace.with_workers(backend.workers());
                (backend, None)
            }
        };
        if let Some(reactor) = backend.reactor() {
            trace = trace.with_reactor(reactor);
        }
        let gil = global::gil_for_scope(decision.thread_mode, &decision.config);
        let io_bound = decision.config.io_bound == Some(true);
        let workers = backend.workers();
        let parallelism = if io_bound {
            workers.blocking_cap()
        } else {
            workers.cpu()
        };
        // Items on the workers only when the scope said its work is CPU
        // work (`cpu_bound`) and not that it blocks (`io_bound`), outside
        // `Gil`, on unirun workers: an item that blocks on something a task
        // of the scope will do must not take the worker that task needs.
        let cpu_bound = decision.config.cpu_bound == Some(true);
        let map_on_workers =
            cpu_bound && !io_bound && gil.is_none() && backend.core_pool().is_some();
        trace = trace.with_map_path(if map_on_workers {
            "map on the workers (cpu_bound=true)"
        } else if io_bound {
            "map on the blocking lane (io_bound=true)"
        } else if gil.is_some() {
            "map on the blocking lane (mode=gil runs items one at a time)"
        } else if cpu_bound {
            "map on the blocking lane (no unirun workers on this backend)"
        } else {
            "map on the blocking lane (items may block; cpu_bound=true runs them on the workers)"
        });
        let name = backend.name().to_string();
        let mut owned = owned;
        let processes = owned.as_mut().and_then(|s| s.processes.take());
        let scope = ScopeState::new(backend, gil, true, process_options, processes);
        if let Some(client) = cluster {
            let _ = scope.cluster.set(client);
        }
        let forced = decision.config.force_threads == Some(true);
        scope
            .threads_only
            .store(forced, std::sync::atomic::Ordering::Relaxed);
        let owned = owned.map(|started| started.owned);
        scheduler::publish(&trace, self.on_decision.as_ref());
        crate::observe::scope_started(&name, trace.resolved());
        Ok(Run {
            handle: Handle::new(scope.backend.clone(), Some(scope.clone())),
            scope,
            owned,
            trace,
            parallelism: parallelism.max(1),
            map_on_workers,
            name,
            finished: false,
        })
    }
}

impl fmt::Debug for RunBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("RunBuilder");
        f.field("flavor", &self.flavor)
            .field("config", &self.config)
            .field("name", &self.name)
            .field("max_workers", &self.limits.max_workers)
            .field("max_blocking", &self.limits.max_blocking)
            .field("executor", &self.executor)
            .field("on_decision", &self.on_decision.is_some());
        f.field("process_options", &self.process_options);
        f.finish()
    }
}
