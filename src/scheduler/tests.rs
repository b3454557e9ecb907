//! The scheduler's unit tests: resolution order, sizing and fallbacks.

use super::*;

fn request(requested: Flavor, code: RuntimeConfig) -> Request {
    Request {
        requested,
        code,
        configured: RuntimeConfig::default(),
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
            blocking_cap: 512,
            name: "unirun".into()
        }
    );
    let io = RuntimeConfig::default().io_bound(true);
    let d = decide(request(Flavor::Auto, io.clone()), &env, &caps(), None).unwrap();
    assert_eq!(d.trace.workers(), Some(Workers::new(4, 512)));
    let capped = io.clone().max_workers(3);
    let d = decide(request(Flavor::Auto, capped), &env, &caps(), None).unwrap();
    // The worker cap leaves the blocking lane alone.
    assert_eq!(d.trace.workers(), Some(Workers::new(3, 512)));
    let lane = io.max_blocking(5);
    let d = decide(request(Flavor::Auto, lane), &env, &caps(), None).unwrap();
    assert_eq!(d.trace.workers(), Some(Workers::new(4, 5)));
}

#[test]
fn max_workers_from_the_environment_does_not_cap_the_blocking_lane() {
    let (config, problems) = crate::config::parse_vars([("UNIRUN_MAX_WORKERS", "3")]);
    assert!(problems.is_empty());
    let env = EnvSnapshot {
        config,
        rejected: Vec::new(),
    };
    let d = decide(
        request(Flavor::Threads, RuntimeConfig::default()),
        &env,
        &caps(),
        None,
    )
    .unwrap();
    assert_eq!(d.trace.workers(), Some(Workers::new(3, 512)));
    let (config, _) = crate::config::parse_vars([("UNIRUN_MAX_BLOCKING", "7")]);
    let env = EnvSnapshot {
        config,
        rejected: Vec::new(),
    };
    let d = decide(
        request(Flavor::Threads, RuntimeConfig::default()),
        &env,
        &caps(),
        None,
    )
    .unwrap();
    assert_eq!(d.trace.workers(), Some(Workers::new(4, 7)));
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

#[test]
fn a_mode_from_the_environment_without_its_backend_falls_back_to_threads() {
    let mut caps = caps();
    // Smol missing from the build, whatever this build's features.
    caps.backends.retain(|f| *f != Flavor::Smol);
    let (config, _) = crate::config::parse_vars([("UNIRUN_MODE", "smol")]);
    let env = EnvSnapshot {
        config,
        rejected: Vec::new(),
    };
    let d = decide(
        request(Flavor::Auto, RuntimeConfig::default()),
        &env,
        &caps,
        None,
    )
    .expect("the environment never breaks a build");
    assert_eq!(d.trace.resolved(), Flavor::Threads);
    let line = d.trace.to_string();
    assert!(line.contains("UNIRUN_MODE=smol"), "{line}");
    assert!(line.contains("smol-backend"), "{line}");
    assert!(line.contains("fallback"), "{line}");

    // The same flavor asked for in code is an error naming the feature.
    let code = RuntimeConfig::default().flavor(Flavor::Smol);
    let err = decide(
        request(Flavor::Auto, code),
        &EnvSnapshot::default(),
        &caps,
        None,
    )
    .err()
    .expect("a flavor asked for in code fails without its backend");
    assert!(err.to_string().contains("smol-backend"), "{err}");
}
