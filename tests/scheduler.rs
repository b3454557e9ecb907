//! Choosing a backend (docs/design.md): the resolution order (every
//! `Reason`), sizing, traces, the environment's part in decisions,
//! listeners, `configure`/`reset` and `capabilities`.
//!
//! Every test here touches process-wide state (the environment, the shared
//! default, the last decision, listeners), so each one runs alone in a
//! child process with exactly the `UNIRUN_*` variables it names: they pass
//! under `cargo test`'s parallel threads and whatever the developer's shell
//! exports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use unirun::trace::Reason;
use unirun::{DecisionTrace, Flavor, Run, RuntimeConfig, ThreadMode};

/// In the parent: re-runs `test` alone in a child process whose only
/// `UNIRUN_*` variables are `vars`, asserts it passed, and returns its
/// stderr. In the child: `None`, and the caller runs the test's body.
fn child(test: &str, vars: &[(&str, &str)]) -> Option<String> {
    if unirun_test_support::child::is_child() {
        return None;
    }
    Some(unirun_test_support::child::run_child(test, vars).stderr)
}

fn trace_of(builder: unirun::RunBuilder) -> DecisionTrace {
    builder.build().unwrap().trace().clone()
}

#[test]
fn the_default_is_a_pool_sized_from_the_capabilities() {
    if child("the_default_is_a_pool_sized_from_the_capabilities", &[]).is_some() {
        return;
    }
    let caps = unirun::capabilities();
    assert_eq!(
        caps.cpu_budget(),
        unirun_platform::cpu_budget().available,
        "the budget honours affinity and cgroup quotas"
    );
    let trace = trace_of(Run::builder());
    assert_eq!(trace.requested(), Flavor::Auto);
    assert_eq!(trace.resolved(), Flavor::Threads);
    assert_eq!(trace.reasons(), [Reason::Default]);
    assert_eq!(trace.thread_mode(), ThreadMode::Nogil);
    assert_eq!(trace.name(), Some("unirun"));
    let workers = trace.workers().unwrap();
    assert_eq!(workers.cpu(), caps.suggested_cpu_workers());
    assert!(workers.blocking_cap() >= 512);
    assert!(trace.env_applied().is_empty() && trace.env_rejected().is_empty());
    assert!(
        trace
            .to_string()
            .contains("because auto: no flavor set (code or UNIRUN_MODE)"),
        "{trace}"
    );

    // io-bound lanes get more threads; max_workers caps the async workers
    // only, max_blocking the lane.
    let io = trace_of(Run::builder().config(RuntimeConfig::default().io_bound(true)));
    assert_eq!(
        io.workers().unwrap().blocking_cap(),
        caps.suggested_io_workers()
    );
    assert_eq!(io.hints().io_bound(), Some(true));
    let capped = trace_of(Run::builder().max_workers(1));
    assert_eq!(capped.workers().unwrap().cpu(), 1);
    assert_eq!(
        capped.workers().unwrap().blocking_cap(),
        workers.blocking_cap()
    );
    let lane = trace_of(Run::builder().max_blocking(2));
    assert_eq!(lane.workers().unwrap().cpu(), workers.cpu());
    assert_eq!(lane.workers().unwrap().blocking_cap(), 2);

    // The shared default decides the same way, once, and says so.
    let handle = unirun::get_executor();
    let shared = unirun::last_decision().unwrap();
    assert_eq!(shared.reasons(), [Reason::Default]);
    assert_eq!(shared.name(), Some("unirun"));
    assert_eq!(
        shared.workers().map(|w| w.cpu()),
        Some(handle.num_workers())
    );
}

#[test]
fn every_step_of_the_resolution_order_is_a_reason() {
    if child("every_step_of_the_resolution_order_is_a_reason", &[]).is_some() {
        return;
    }
    let code = RuntimeConfig::default;

    // 1. provided beats everything, force switches included.
    let owner = Run::builder().name("owner").build().unwrap();
    let trace = trace_of(
        Run::builder()
            .executor(owner.handle())
            .config(code().force_process(true)),
    );
    assert_eq!(trace.reasons(), [Reason::Provided]);
    assert!(trace.to_string().contains("provided"), "{trace}");

    // 2. force_threads beats an explicit flavor, and force_process.
    let trace = trace_of(
        Run::builder()
            .flavor(Flavor::Shared)
            .config(code().force_threads(true).force_process(true)),
    );
    assert_eq!(trace.reasons(), [Reason::ForcedThreads { var: None }]);
    assert_eq!(trace.resolved(), Flavor::Threads);
    assert!(
        trace.to_string().contains("forced threads by config"),
        "{trace}"
    );

    // force_process without the process backend: threads, and why.
    let trace = trace_of(Run::builder().config(code().force_process(true)));
    if !Flavor::Processes.is_available() {
        assert_eq!(
            trace.reasons(),
            [
                Reason::ForcedProcess { var: None },
                Reason::ForcedProcessFallback
            ]
        );
        assert_eq!(trace.resolved(), Flavor::Threads);
        let fallback = &trace.fallbacks()[0];
        assert_eq!(
            (fallback.from(), fallback.to()),
            (Flavor::Processes, Flavor::Threads)
        );
        assert!(fallback.cause().contains("process-backend"), "{fallback}");
        let line = trace.to_string();
        for word in ["forced processes", "fallback processes->threads"] {
            assert!(line.contains(word), "{word} not in {line}");
        }
    }

    // 3. an explicit flavor.
    let trace = trace_of(Run::builder().flavor(Flavor::Threads));
    assert_eq!(
        trace.reasons(),
        [Reason::Explicit {
            flavor: Flavor::Threads
        }]
    );

    // 4. auto = false: the shared pool.
    let trace = trace_of(Run::builder().config(code().auto(false)));
    assert_eq!(trace.reasons(), [Reason::AutoDisabled]);
    assert_eq!(trace.resolved(), Flavor::Shared);

    // 5. the configured flavor, from a scope's config or from configure().
    let trace = trace_of(Run::builder().config(code().flavor(Flavor::Threads)));
    assert_eq!(
        trace.reasons(),
        [Reason::ConfigFlavor {
            flavor: Flavor::Threads,
            from_env: false
        }]
    );
    unirun::configure(code().flavor(Flavor::Shared)).unwrap();
    let trace = trace_of(Run::builder());
    assert_eq!(trace.resolved(), Flavor::Shared);
    assert!(
        trace.to_string().contains("config flavor shared"),
        "{trace}"
    );
    unirun::reset();

    // 6. no ambient runtime without the tokio backend; the reason reads so.
    assert_eq!(unirun::capabilities().ambient_runtime(), None);
    let ambient = Reason::AmbientTokio.to_string();
    assert!(ambient.contains("ambient"), "{ambient}");

    // 7. cpu-bound work in gil mode wants processes.
    let trace =
        trace_of(Run::builder().config(code().cpu_bound(true).thread_mode(ThreadMode::Gil)));
    assert_eq!(trace.reasons(), [Reason::CpuBoundGil]);
    assert_eq!(trace.thread_mode(), ThreadMode::Gil);
    assert_eq!(trace.hints().cpu_bound(), Some(true));
    if !Flavor::Processes.is_available() {
        assert_eq!(trace.resolved(), Flavor::Threads);
        assert!(trace.to_string().contains("fallback"), "{trace}");
    }

    // 8. nothing else: threads by default.
    assert_eq!(trace_of(Run::builder()).reasons(), [Reason::Default]);

    // A nested scope reuses its parent's backend.
    let parent = Run::builder().name("parent").build().unwrap();
    let nested = parent.block_on(async { trace_of(Run::builder()) });
    assert_eq!(nested.reasons(), [Reason::Default, Reason::ReusedParent]);
    assert_eq!(nested.name(), Some("parent"));
}

#[test]
fn an_unavailable_configured_flavor_fails_scopes_but_not_the_helpers() {
    if child(
        "an_unavailable_configured_flavor_fails_scopes_but_not_the_helpers",
        &[],
    )
    .is_some()
    {
        return;
    }
    if Flavor::Tokio.is_available() {
        return;
    }
    let config = RuntimeConfig::default().flavor(Flavor::Tokio);
    let err = Run::builder().config(config.clone()).build().unwrap_err();
    assert!(err.to_string().contains("tokio-backend"), "{err}");

    unirun::configure(config).unwrap();
    assert_eq!(unirun::spawn(async { 1 }).join().unwrap(), 1);
    let trace = unirun::last_decision().unwrap();
    assert_eq!(trace.resolved(), Flavor::Threads);
    assert_eq!(trace.fallbacks()[0].from(), Flavor::Tokio);
    assert!(
        trace.to_string().contains("fallback tokio->threads"),
        "{trace}"
    );
}

#[test]
fn configure_sets_the_base_config_and_reset_clears_it() {
    if child("configure_sets_the_base_config_and_reset_clears_it", &[]).is_some() {
        return;
    }
    let before = unirun::get_executor();
    assert!(before.max_blocking_threads() >= 512);

    unirun::configure(RuntimeConfig::default().max_workers(1).max_blocking(2)).unwrap();
    let after = unirun::get_executor();
    assert_eq!(after.num_workers(), 1);
    assert_eq!(after.max_blocking_threads(), 2);
    // The old default was retired: what it would spawn now is cancelled.
    assert!(before.spawn(async {}).join().unwrap_err().is_cancelled());
    // A scope's own settings win over configure's.
    let scope = trace_of(Run::builder().config(RuntimeConfig::default().max_blocking(3)));
    assert_eq!(scope.workers().unwrap().blocking_cap(), 3);
    assert_eq!(
        trace_of(Run::builder()).workers().unwrap().blocking_cap(),
        2
    );

    let err = unirun::configure(RuntimeConfig::default().max_workers(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid max_workers=0: expected an integer >= 1"
    );
    assert_eq!(unirun::get_executor().num_workers(), 1, "config unchanged");

    let caps = unirun::capabilities();
    assert_eq!(unirun::capabilities(), caps, "cached");
    unirun::reset();
    assert!(unirun::last_decision().is_none());
    assert!(after.spawn(async {}).join().unwrap_err().is_cancelled());
    let fresh = unirun::get_executor();
    assert!(fresh.max_blocking_threads() >= 512);
    assert_eq!(unirun::capabilities(), caps);
}

#[test]
fn listeners_see_every_decision_and_a_panicking_one_is_isolated() {
    if child(
        "listeners_see_every_decision_and_a_panicking_one_is_isolated",
        &[],
    )
    .is_some()
    {
        return;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let panicking = unirun::add_decision_listener(|_| panic!("listener bug"));
    let recording = unirun::add_decision_listener(move |trace| {
        sink.lock().unwrap().push(trace.clone());
    });
    let run = Run::builder().name("heard").build().unwrap();
    assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
    unirun::get_executor();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "the scope and the shared default");
        assert_eq!(&seen[0], run.trace());
        assert_eq!(seen[1].name(), Some("unirun"));
    }
    assert_eq!(unirun::last_decision().unwrap().name(), Some("unirun"));
    assert!(unirun::remove_decision_listener(panicking));
    assert!(unirun::remove_decision_listener(recording));
    assert!(!unirun::remove_decision_listener(recording));
    drop(Run::builder().build().unwrap());
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn reset_removes_every_listener_but_not_a_scopes_own() {
    if child("reset_removes_every_listener_but_not_a_scopes_own", &[]).is_some() {
        return;
    }
    let heard = Arc::new(AtomicUsize::new(0));
    let sink = heard.clone();
    let id = unirun::add_decision_listener(move |_| {
        sink.fetch_add(1, Ordering::SeqCst);
    });
    let guard = unirun::observe_decisions();
    drop(Run::builder().build().unwrap());
    assert_eq!(heard.load(Ordering::SeqCst), 1);

    unirun::reset();
    drop(Run::builder().build().unwrap());
    assert_eq!(
        heard.load(Ordering::SeqCst),
        1,
        "reset removed the listener"
    );
    assert!(!unirun::remove_decision_listener(id), "already removed");
    drop(guard); // removes nothing, and does not panic

    // A scope's own listener is not global state: it always hears its scope.
    let own = Arc::new(AtomicUsize::new(0));
    let sink = own.clone();
    let run = Run::builder()
        .on_decision(move |_| {
            sink.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    assert_eq!(own.load(Ordering::SeqCst), 1);
    drop(run);
}

#[test]
fn observe_decisions_logs_while_the_guard_lives() {
    if let Some(stderr) = child("observe_decisions_logs_while_the_guard_lives", &[]) {
        assert!(
            stderr.contains(r#"because auto: no flavor set (code or UNIRUN_MODE), no tokio runtime to borrow, no cpu-bound gil work; name="observed""#),
            "{stderr}"
        );
        assert!(!stderr.contains("unobserved"), "{stderr}");
        return;
    }
    let guard = unirun::observe_decisions();
    drop(Run::builder().name("observed").build().unwrap());
    drop(guard);
    drop(Run::builder().name("unobserved").build().unwrap());
}

#[test]
fn a_real_trace_serializes_to_json() {
    if child(
        "a_real_trace_serializes_to_json",
        &[("UNIRUN_IO_BOUND", "yes")],
    )
    .is_some()
    {
        return;
    }
    let run = Run::builder()
        .name("json")
        .config(RuntimeConfig::default().thread_mode(ThreadMode::Gil))
        .build()
        .unwrap();
    let v = serde_json::to_value(run.trace()).unwrap();
    assert_eq!(v["requested"], "auto");
    assert_eq!(v["resolved"], "threads");
    assert_eq!(v["reasons"][0]["kind"], "default");
    assert_eq!(v["thread_mode"], "gil");
    assert_eq!(v["name"], "json");
    assert_eq!(v["hints"]["io_bound"], true);
    assert_eq!(v["env_applied"][0]["var"], "UNIRUN_IO_BOUND");
    assert!(v["workers"]["cpu"].as_u64().unwrap() >= 1);
    let caps = serde_json::to_value(unirun::capabilities()).unwrap();
    assert!(caps["cpu_budget"].as_u64().unwrap() >= 1);
}

// --- the environment ------------------------------------------------------

#[test]
fn env_force_threads_is_named_in_the_trace() {
    let vars = [("UNIRUN_FORCE_THREADS", "1"), ("UNIRUN_FORCE_PROCESS", "1")];
    if child("env_force_threads_is_named_in_the_trace", &vars).is_some() {
        return;
    }
    // A kill switch beats code, an explicit flavor included.
    let trace = trace_of(
        Run::builder()
            .flavor(Flavor::Shared)
            .config(RuntimeConfig::default().force_threads(false)),
    );
    assert_eq!(
        trace.reasons(),
        [Reason::ForcedThreads {
            var: Some("UNIRUN_FORCE_THREADS")
        }]
    );
    let line = trace.to_string();
    for part in [
        "forced threads by UNIRUN_FORCE_THREADS",
        "env applied UNIRUN_FORCE_THREADS=true from the environment, \
         UNIRUN_FORCE_PROCESS=true from the environment",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

#[test]
fn env_force_process_falls_back_to_threads_everywhere() {
    if child(
        "env_force_process_falls_back_to_threads_everywhere",
        &[("UNIRUN_FORCE_PROCESS", "yes")],
    )
    .is_some()
    {
        return;
    }
    if Flavor::Processes.is_available() {
        return;
    }
    let expected = [
        Reason::ForcedProcess {
            var: Some("UNIRUN_FORCE_PROCESS"),
        },
        Reason::ForcedProcessFallback,
    ];
    let trace = trace_of(Run::builder());
    assert_eq!(trace.reasons(), expected);
    assert!(trace
        .to_string()
        .contains("forced processes by UNIRUN_FORCE_PROCESS"));
    // The helpers keep working, on threads.
    assert_eq!(unirun::to_thread(|| 5).join().unwrap(), 5);
    let shared = unirun::last_decision().unwrap();
    assert_eq!(shared.reasons(), expected);
    assert_eq!(shared.fallbacks().len(), 1);
}

#[test]
fn env_values_fill_what_code_leaves_unset() {
    let vars = [
        ("UNIRUN_MODE", "shared"),
        ("UNIRUN_MAX_WORKERS", "3"),
        ("UNIRUN_IO_BOUND", "on"),
    ];
    if child("env_values_fill_what_code_leaves_unset", &vars).is_some() {
        return;
    }
    let trace = trace_of(Run::builder());
    assert_eq!(
        trace.reasons(),
        [Reason::ConfigFlavor {
            flavor: Flavor::Shared,
            from_env: true
        }]
    );
    assert_eq!(trace.resolved(), Flavor::Shared);
    let line = trace.to_string();
    assert!(line.contains("env flavor shared"), "{line}");
    assert!(
        line.contains(
            "env applied UNIRUN_MODE=shared from the environment, \
             UNIRUN_IO_BOUND=true from the environment, \
             UNIRUN_MAX_WORKERS=3 from the environment"
        ),
        "{line}"
    );

    // Code wins where it speaks.
    let trace = trace_of(
        Run::builder().config(
            RuntimeConfig::default()
                .flavor(Flavor::Threads)
                .max_workers(5),
        ),
    );
    assert_eq!(
        trace.workers().unwrap().cpu(),
        5.min(unirun::capabilities().cpu_budget())
    );
    assert_eq!(
        trace.reasons(),
        [Reason::ConfigFlavor {
            flavor: Flavor::Threads,
            from_env: false
        }]
    );
    let applied: Vec<&str> = trace.env_applied().iter().map(|o| o.var()).collect();
    assert_eq!(applied, ["UNIRUN_IO_BOUND"]);
    // The worker cap leaves the (io-bound) lane alone.
    assert_eq!(
        trace.workers().unwrap().blocking_cap(),
        unirun::capabilities().suggested_io_workers()
    );
}

#[test]
fn env_auto_off_sends_auto_scopes_to_the_shared_pool() {
    if child(
        "env_auto_off_sends_auto_scopes_to_the_shared_pool",
        &[("UNIRUN_AUTO", "off")],
    )
    .is_some()
    {
        return;
    }
    let trace = trace_of(Run::builder());
    assert_eq!(trace.reasons(), [Reason::AutoDisabled]);
    assert!(trace.to_string().contains("auto disabled"), "{trace}");
    // An explicit flavor is not affected.
    let explicit = Run::new(Flavor::Threads).unwrap();
    assert_eq!(explicit.trace().resolved(), Flavor::Threads);
}

#[test]
fn the_implicit_path_keeps_running_on_bad_env_values_and_records_them() {
    let vars = [("UNIRUN_THREAD_MODE", "gli"), ("UNIRUN_MAX_WORKERS", "abc")];
    if let Some(stderr) = child(
        "the_implicit_path_keeps_running_on_bad_env_values_and_records_them",
        &vars,
    ) {
        // Once per read of the environment: at start and after the reset.
        let printed = stderr
            .lines()
            .filter(|l| l.contains(r#"ignoring invalid UNIRUN_THREAD_MODE="gli""#))
            .count();
        assert_eq!(printed, 2, "{stderr}");
        assert!(stderr.contains(r#"UNIRUN_MAX_WORKERS="abc""#), "{stderr}");
        return;
    }
    // The strict reader refuses, naming the first bad variable, its value
    // and the choices.
    let err = RuntimeConfig::from_env().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid UNIRUN_MAX_WORKERS="abc": expected an integer >= 1"#
    );
    // The helpers run on defaults.
    assert_eq!(unirun::spawn(async { 1 }).join().unwrap(), 1);
    assert_eq!(unirun::to_thread(|| 2).join().unwrap(), 2);
    let trace = unirun::last_decision().unwrap();
    assert_eq!(trace.thread_mode(), ThreadMode::Nogil);
    let rejected: Vec<&str> = trace.env_rejected().iter().map(|r| r.var()).collect();
    assert_eq!(rejected, ["UNIRUN_MAX_WORKERS", "UNIRUN_THREAD_MODE"]);
    let line = trace.to_string();
    assert!(
        line.contains(r#"env rejected UNIRUN_MAX_WORKERS="abc" (expected an integer >= 1), UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)"#),
        "{line}"
    );
    // Scopes build too, and record the same.
    let scope = trace_of(Run::builder());
    assert_eq!(scope.env_rejected(), trace.env_rejected());
    unirun::get_executor();
    unirun::reset();
    assert_eq!(unirun::spawn(async { 3 }).join().unwrap(), 3);
}

/// The operator switch serializes the helpers' async tasks; their
/// blocking closures run outside the lock, so the switch never deadlocks
/// closures that wait for each other (tests/gil.rs proves that part).
#[test]
fn env_gil_serializes_the_helpers_async_tasks() {
    if child(
        "env_gil_serializes_the_helpers_async_tasks",
        &[("UNIRUN_THREAD_MODE", "gil")],
    )
    .is_some()
    {
        return;
    }
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let visit = {
        let (inside, max) = (inside.clone(), max.clone());
        move || {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            for _ in 0..500 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
            inside.fetch_sub(1, Ordering::SeqCst);
        }
    };
    let mut handles = Vec::new();
    for _ in 0..40 {
        let a = visit.clone();
        handles.push(unirun::spawn(async move { a() }));
    }
    // Closures run alongside, outside the lock.
    handles.push(unirun::to_thread(|| ()));
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 1);
    let trace = unirun::last_decision().unwrap();
    assert_eq!(trace.thread_mode(), ThreadMode::Gil);
    assert_eq!(trace.env_applied()[0].var(), "UNIRUN_THREAD_MODE");
}

#[test]
fn reset_reads_the_environment_again() {
    if child("reset_reads_the_environment_again", &[]).is_some() {
        return;
    }
    unirun::get_executor();
    assert_eq!(
        unirun::last_decision().unwrap().thread_mode(),
        ThreadMode::Nogil
    );
    // Only this test's thread and the idle pool run here; nothing reads the
    // environment concurrently.
    std::env::set_var("UNIRUN_THREAD_MODE", "gil");
    unirun::get_executor();
    assert_eq!(
        unirun::last_decision().unwrap().thread_mode(),
        ThreadMode::Nogil,
        "the environment is read once"
    );
    unirun::reset();
    unirun::get_executor();
    assert_eq!(
        unirun::last_decision().unwrap().thread_mode(),
        ThreadMode::Gil
    );
}

#[test]
fn the_trace_names_where_each_value_came_from() {
    // The real environment sets UNIRUN_IO_BOUND, and overrides the file's
    // UNIRUN_CPU_BOUND; the file sets UNIRUN_MAX_WORKERS; code sets
    // thread_mode over the file's value.
    let vars = [("UNIRUN_IO_BOUND", "on"), ("UNIRUN_CPU_BOUND", "off")];
    if child("the_trace_names_where_each_value_came_from", &vars).is_some() {
        return;
    }
    let path = std::env::temp_dir().join(format!("unirun-sources-{}.env", std::process::id()));
    std::fs::write(
        &path,
        "UNIRUN_MAX_WORKERS=1\nUNIRUN_CPU_BOUND=on\nUNIRUN_THREAD_MODE=gil\n",
    )
    .unwrap();
    let from_file = RuntimeConfig::from_env_file(&path);
    std::fs::remove_file(&path).unwrap();
    let config = from_file.unwrap().thread_mode(ThreadMode::Nogil);
    let trace = trace_of(Run::builder().config(config));
    let applied: Vec<String> = trace.env_applied().iter().map(|o| o.to_string()).collect();
    let file = path.display();
    assert_eq!(
        applied,
        [
            "UNIRUN_CPU_BOUND=false from the environment".to_string(),
            "UNIRUN_IO_BOUND=true from the environment".to_string(),
            format!("UNIRUN_MAX_WORKERS=1 from {file}"),
        ]
    );
    assert_eq!(
        trace.env_applied()[2].source(),
        &unirun::ValueSource::EnvFile(path.clone())
    );
    // The value set in code is not attributed to the file.
    assert_eq!(trace.thread_mode(), ThreadMode::Nogil);
    assert!(!trace.to_string().contains("UNIRUN_THREAD_MODE"), "{trace}");
    let json = serde_json::to_value(&trace).unwrap();
    assert_eq!(
        json["env_applied"][2]["source"]["env_file"],
        file.to_string()
    );
    assert_eq!(json["env_applied"][0]["source"], "environment");
}

#[test]
fn unirun_trace_json_prints_every_decision_as_json() {
    let vars = [
        ("UNIRUN_TRACE", "json"),
        ("UNIRUN_COMPAT_MODE", "passthrough"),
    ];
    if let Some(stderr) = child("unirun_trace_json_prints_every_decision_as_json", &vars) {
        let objects: Vec<serde_json::Value> = stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let scope = objects
            .iter()
            .find(|o| o["name"] == "traced")
            .unwrap_or_else(|| panic!("no scope decision in:\n{stderr}"));
        assert_eq!(scope["requested"], "threads");
        assert_eq!(scope["resolved"], "threads");
        assert!(scope["reasons"].as_array().is_some_and(|r| !r.is_empty()));
        assert!(scope["env_applied"].is_array(), "{scope}");
        // The shared default's decision (no name), and the compat mode with
        // where it came from.
        assert!(
            objects
                .iter()
                .any(|o| o["name"] == "unirun" && o["requested"] == "auto"),
            "{stderr}"
        );
        let compat = objects
            .iter()
            .find(|o| o.get("compat_mode").is_some())
            .unwrap_or_else(|| panic!("no compat decision in:\n{stderr}"));
        assert_eq!(compat["compat_mode"], "passthrough");
        assert_eq!(
            compat["from"],
            "UNIRUN_COMPAT_MODE=passthrough from the environment"
        );
        return;
    }
    let run = Run::builder()
        .name("traced")
        .flavor(Flavor::Threads)
        .build()
        .unwrap();
    assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
    drop(run);
    assert_eq!(unirun::to_thread(|| 2).join().unwrap(), 2);
    assert_eq!(unirun::compat::thread::spawn(|| 3).join().unwrap(), 3);
}

#[test]
fn unirun_trace_text_prints_the_one_line_trace() {
    let vars = [("UNIRUN_TRACE", "1")];
    if let Some(stderr) = child("unirun_trace_text_prints_the_one_line_trace", &vars) {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("unirun: threads (requested threads)")
                    && l.contains("name=\"traced\"")),
            "{stderr}"
        );
        return;
    }
    let run = Run::builder()
        .name("traced")
        .flavor(Flavor::Threads)
        .build()
        .unwrap();
    drop(run);
}

#[test]
fn unirun_trace_off_prints_nothing_and_a_bad_value_is_reported() {
    if let Some(stderr) = child(
        "unirun_trace_off_prints_nothing_and_a_bad_value_is_reported",
        &[("UNIRUN_TRACE", "0")],
    ) {
        assert!(!stderr.contains("unirun: threads"), "{stderr}");
        let stderr = child(
            "unirun_trace_off_prints_nothing_and_a_bad_value_is_reported",
            &[("UNIRUN_TRACE", "verbose")],
        )
        .unwrap();
        // The implicit path reports it once, and prints no trace.
        let reported = stderr.matches(r#"UNIRUN_TRACE="verbose""#).count();
        assert_eq!(reported, 1, "{stderr}");
        assert!(!stderr.contains("unirun: threads"), "{stderr}");
        return;
    }
    let bad = std::env::var("UNIRUN_TRACE").unwrap() == "verbose";
    if bad {
        let err = RuntimeConfig::from_env().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid UNIRUN_TRACE="verbose": expected 0, 1, text or json"#
        );
    } else {
        RuntimeConfig::from_env().unwrap();
    }
    drop(Run::new(Flavor::Threads).unwrap());
    assert_eq!(unirun::to_thread(|| 2).join().unwrap(), 2);
    assert_eq!(unirun::to_thread(|| 3).join().unwrap(), 3);
}
