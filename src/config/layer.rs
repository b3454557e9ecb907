//! The precedence rules' building blocks: code over environment, and the
//! operator kill switches over both. Only the scheduler's `resolve`
//! combines them (see `scheduler::resolve`).

use std::fmt::Display;

use super::{RuntimeConfig, Sourced};
use crate::env::{
    EnvOverride, ValueSource, Var, AUTO, COMPAT_MODE, CPU_BOUND, FORCE_PROCESS, FORCE_THREADS,
    IO_BOUND, MAX_BLOCKING, MAX_WORKERS, MODE, THREAD_MODE,
};

impl RuntimeConfig {
    /// Fills every setting left unset in `self` from `env`; settings made in
    /// `self` win. Kill switches are not applied.
    #[must_use]
    pub(crate) fn merged_over(self, env: &RuntimeConfig) -> RuntimeConfig {
        self.layer(env, true, false).0
    }

    /// The full rules: `self` (code) wins, `env` fills the rest, and
    /// `env`'s kill switches override code. Returns the env values that
    /// took effect, in the table order of [`RuntimeConfig`].
    #[must_use]
    pub(crate) fn apply_env(self, env: &RuntimeConfig) -> (RuntimeConfig, Vec<EnvOverride>) {
        self.layer(env, true, true)
    }

    /// Every setting with its primary variable and its value as the trace
    /// prints it, in the table order of [`RuntimeConfig`].
    pub(crate) fn values(&self) -> [(Var, Option<String>); 10] {
        fn text<T: Display>(value: Option<T>) -> Option<String> {
            value.map(|v| v.to_string())
        }
        [
            (MODE, text(self.flavor)),
            (AUTO, text(self.auto)),
            (CPU_BOUND, text(self.cpu_bound)),
            (IO_BOUND, text(self.io_bound)),
            (MAX_WORKERS, text(self.max_workers)),
            (MAX_BLOCKING, text(self.max_blocking)),
            (THREAD_MODE, text(self.thread_mode)),
            (FORCE_THREADS, text(self.force_threads)),
            (FORCE_PROCESS, text(self.force_process)),
            (COMPAT_MODE, text(self.compat_mode)),
        ]
    }

    /// Records every set value as read from `source_of(field)`.
    #[must_use]
    pub(crate) fn sourced(mut self, source_of: impl Fn(&'static str) -> ValueSource) -> Self {
        self.sources = self
            .values()
            .into_iter()
            .filter_map(|(var, value)| {
                Some(Sourced {
                    var,
                    value: value?,
                    source: source_of(var.field),
                })
            })
            .collect();
        self
    }

    /// The values read from a variable that are in force, with where each
    /// was read, in table order: what the trace's `env applied` lists.
    pub(crate) fn applied(&self) -> Vec<EnvOverride> {
        self.sources
            .iter()
            .map(|s| {
                EnvOverride::new(s.var.name, s.value.clone(), s.var.field)
                    .with_source(s.source.clone())
            })
            .collect()
    }

    /// `env` over `self`: its values fill what `self` lacks (`fill`), its
    /// kill switches override (`kill`); tests check the two halves apart.
    pub(super) fn layer(
        mut self,
        env: &RuntimeConfig,
        fill: bool,
        kill: bool,
    ) -> (RuntimeConfig, Vec<EnvOverride>) {
        let (c, e) = (&mut self, env);
        let mut l = Layering {
            fill,
            kill,
            env_sources: &env.sources,
            // Code layered over code keeps no source; an environment
            // config without recorded sources is the process environment.
            default_source: kill.then_some(ValueSource::Environment),
            applied: Vec::new(),
            sources: Vec::new(),
        };
        l.setting(&mut c.flavor, e.flavor, MODE);
        l.setting(&mut c.auto, e.auto, AUTO);
        l.setting(&mut c.cpu_bound, e.cpu_bound, CPU_BOUND);
        l.setting(&mut c.io_bound, e.io_bound, IO_BOUND);
        l.setting(&mut c.max_workers, e.max_workers, MAX_WORKERS);
        l.setting(&mut c.max_blocking, e.max_blocking, MAX_BLOCKING);
        l.setting(&mut c.thread_mode, e.thread_mode, THREAD_MODE);
        l.kill_switch(&mut c.force_threads, e.force_threads, FORCE_THREADS);
        l.kill_switch(&mut c.force_process, e.force_process, FORCE_PROCESS);
        l.kill_switch(&mut c.compat_mode, e.compat_mode, COMPAT_MODE);
        let (applied, taken) = (l.applied, l.sources);
        for sourced in taken {
            self.forget(sourced.var.field);
            self.sources.push(sourced);
        }
        let order = |s: &Sourced| KNOWN_BY_FIELD.iter().position(|v| v.field == s.var.field);
        self.sources.sort_by_key(order);
        (self, applied)
    }
}

/// One variable per setting, in table order.
const KNOWN_BY_FIELD: [Var; 10] = [
    MODE,
    AUTO,
    CPU_BOUND,
    IO_BOUND,
    MAX_WORKERS,
    MAX_BLOCKING,
    THREAD_MODE,
    FORCE_THREADS,
    FORCE_PROCESS,
    COMPAT_MODE,
];

/// One pass of layering an environment config over a code config.
struct Layering<'a> {
    /// Let env fill settings that code left unset.
    fill: bool,
    /// Let env's kill switches replace code's values.
    kill: bool,
    /// Where env's values were read (the environment when not recorded).
    env_sources: &'a [Sourced],
    /// The source of a value `env_sources` says nothing about.
    default_source: Option<ValueSource>,
    applied: Vec<EnvOverride>,
    /// The sources of the values taken.
    sources: Vec<Sourced>,
}

impl Layering<'_> {
    fn setting<T: Copy + Display>(&mut self, code: &mut Option<T>, env: Option<T>, var: Var) {
        let take = self.fill && code.is_none();
        self.take(take, code, env, var);
    }

    /// A kill switch is filled like a setting, or replaces code when `kill`.
    fn kill_switch<T: Copy + Display>(&mut self, code: &mut Option<T>, env: Option<T>, var: Var) {
        let take = self.kill || (self.fill && code.is_none());
        self.take(take, code, env, var);
    }

    fn take<T: Copy + Display>(
        &mut self,
        take: bool,
        code: &mut Option<T>,
        env: Option<T>,
        var: Var,
    ) {
        if let (true, Some(value)) = (take, env) {
            *code = Some(value);
            let value = value.to_string();
            let source = self
                .env_sources
                .iter()
                .find(|s| s.var.field == var.field)
                .map(|s| s.source.clone())
                .or_else(|| self.default_source.clone());
            let applied = EnvOverride::new(var.name, value.clone(), var.field);
            let Some(source) = source else {
                self.applied.push(applied);
                return;
            };
            self.applied.push(applied.with_source(source.clone()));
            self.sources.push(Sourced { var, value, source });
        }
    }
}
