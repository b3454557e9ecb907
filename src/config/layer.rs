//! The precedence rules' building blocks: code over environment, and the
//! operator kill switches over both. Only the scheduler's `resolve`
//! combines them (see `scheduler::resolve`).

use std::fmt::Display;

use super::RuntimeConfig;
use crate::env::{
    EnvOverride, Var, AUTO, COMPAT_MODE, CPU_BOUND, FORCE_PROCESS, FORCE_THREADS, IO_BOUND,
    MAX_BLOCKING, MAX_WORKERS, MODE, THREAD_MODE,
};

impl RuntimeConfig {
    /// Fills every setting left unset in `self` from `env`; settings made in
    /// `self` win. Kill switches are not applied.
    #[must_use]
    pub(crate) fn merged_over(self, env: &RuntimeConfig) -> RuntimeConfig {
        self.layer(env, true, false).0
    }

    /// Only the kill switches of `env` over `self` (tests check the two
    /// halves of [`apply_env`](Self::apply_env) apart).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn apply_kill_switches(
        self,
        env: &RuntimeConfig,
    ) -> (RuntimeConfig, Vec<EnvOverride>) {
        self.layer(env, false, true)
    }

    /// The full rules: `self` (code) wins, `env` fills the rest, and
    /// `env`'s kill switches override code. Returns the env values that
    /// took effect, in the table order of [`RuntimeConfig`].
    #[must_use]
    pub(crate) fn apply_env(self, env: &RuntimeConfig) -> (RuntimeConfig, Vec<EnvOverride>) {
        self.layer(env, true, true)
    }

    fn layer(
        mut self,
        env: &RuntimeConfig,
        fill: bool,
        kill: bool,
    ) -> (RuntimeConfig, Vec<EnvOverride>) {
        let (c, e) = (&mut self, env);
        let mut l = Layering {
            fill,
            kill,
            applied: Vec::new(),
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
        (self, l.applied)
    }
}

/// One pass of layering an environment config over a code config.
struct Layering {
    /// Let env fill settings that code left unset.
    fill: bool,
    /// Let env's kill switches replace code's values.
    kill: bool,
    applied: Vec<EnvOverride>,
}

impl Layering {
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
            self.applied
                .push(EnvOverride::new(var.name, value, var.field));
        }
    }
}
