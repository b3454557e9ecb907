//! The one place the precedence rules are applied: settings made in code
//! (the scope's own, then [`configure`](crate::configure)'s) win, the
//! environment fills what code left unset, defaults fill the rest, and the
//! operator kill switches (`UNIRUN_FORCE_THREADS`, `UNIRUN_FORCE_PROCESS`,
//! `UNIRUN_COMPAT_MODE`) win over everything.

use crate::config::RuntimeConfig;
use crate::env::EnvOverride;
use crate::flavor::CompatMode;

/// The settings in force for a request, and the environment values that
/// took effect (for the trace).
pub(super) fn resolve(
    scope: &RuntimeConfig,
    configured: &RuntimeConfig,
    env: &RuntimeConfig,
) -> (RuntimeConfig, Vec<EnvOverride>) {
    // Values that code passed on from `from_env_file`/`from_env` keep
    // their source, so the trace names them beside the environment's.
    let (config, _) = scope.clone().merged_over(configured).apply_env(env);
    let applied = config.applied();
    (config, applied)
}

/// The flavor the kill switches force, whatever the code asked for.
#[cfg(all(unix, feature = "process-backend"))]
pub(crate) fn forced_flavor(
    configured: &RuntimeConfig,
    env: &RuntimeConfig,
) -> Option<crate::flavor::Flavor> {
    resolve(&RuntimeConfig::default(), configured, env)
        .0
        .forced_flavor()
}

/// The compat modules' mode: `UNIRUN_COMPAT_MODE` (a kill switch), else
/// what [`configure`](crate::configure) set, else managed; and where it
/// came from, for the trace.
pub(crate) fn compat_mode(configured: &RuntimeConfig, env: &RuntimeConfig) -> (CompatMode, String) {
    let (config, applied) = resolve(&RuntimeConfig::default(), configured, env);
    let from = match applied.iter().find(|o| o.field() == "compat_mode") {
        Some(o) => o.to_string(),
        None if config.compat_mode.is_some() => "configure".to_owned(),
        None => "default".to_owned(),
    };
    (config.compat_mode.unwrap_or(CompatMode::Managed), from)
}
