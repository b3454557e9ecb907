//! The trace's unit tests: its one-line form and its JSON.
use super::*;
use crate::env::{EnvOverride, RejectedVar};
use serde_json::Value;

fn assert_one_line(line: &str) {
    assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
}

#[test]
fn display_example_from_the_design() {
    let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
        .with_workers(Workers::new(2, 64))
        .with_thread_mode(ThreadMode::Nogil)
        .with_env_applied(vec![EnvOverride::new(
            "UNIRUN_MAX_WORKERS",
            "2",
            "max_workers",
        )])
        .with_env_rejected(vec![RejectedVar::new(
            "UNIRUN_THREAD_MODE",
            "gli",
            "auto, gil or nogil",
        )]);
    assert_eq!(
        trace.to_string(),
        "unirun: threads (requested auto) because auto: no flavor set (code or UNIRUN_MODE), no tokio runtime to borrow, no cpu-bound gil work; workers=2 blocking<=64; mode=nogil; \
         env applied UNIRUN_MAX_WORKERS=2 from the environment; \
         env rejected UNIRUN_THREAD_MODE=\"gli\" (expected auto, gil or nogil)"
    );
}

#[test]
fn display_uses_plain_words() {
    let forced = DecisionTrace::new(
        Flavor::Auto,
        Flavor::Threads,
        Reason::ForcedThreads {
            var: Some("UNIRUN_FORCE_THREADS"),
        },
    )
    .with_env_applied(vec![EnvOverride::new(
        "UNIRUN_FORCE_THREADS",
        "true",
        "force_threads",
    )]);
    let line = forced.to_string();
    assert!(
        line.contains("forced threads by UNIRUN_FORCE_THREADS"),
        "{line}"
    );
    assert!(
        line.contains("env applied UNIRUN_FORCE_THREADS=true"),
        "{line}"
    );

    let line = DecisionTrace::new(Flavor::Threads, Flavor::Threads, Reason::Provided).to_string();
    assert!(line.contains("provided"), "{line}");

    let line = DecisionTrace::new(Flavor::Tokio, Flavor::Tokio, Reason::AmbientTokio).to_string();
    assert!(line.contains("ambient"), "{line}");

    let line = DecisionTrace::new(
        Flavor::Auto,
        Flavor::Threads,
        Reason::ForcedProcess {
            var: Some("UNIRUN_FORCE_PROCESS"),
        },
    )
    .with_reason(Reason::ForcedProcessFallback)
    .with_fallback(Fallback::new(
        Flavor::Processes,
        Flavor::Threads,
        "process backend unavailable",
    ))
    .to_string();
    assert!(
        line.contains("forced processes by UNIRUN_FORCE_PROCESS, then fallback to threads"),
        "{line}"
    );
    assert!(line.contains("fallback processes->threads"), "{line}");

    let line = DecisionTrace::new(Flavor::Auto, Flavor::Shared, Reason::AutoDisabled).to_string();
    assert!(line.contains("auto disabled"), "{line}");
    let line = DecisionTrace::new(
        Flavor::Smol,
        Flavor::Smol,
        Reason::Explicit {
            flavor: Flavor::Smol,
        },
    )
    .to_string();
    assert!(line.contains("explicit"), "{line}");
}

#[test]
fn display_is_one_line_whatever_the_input() {
    let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
        .with_name("bad\nname")
        .with_hints(Hints::new(Some(true), Some(false)))
        .with_parent_threads(3)
        .with_process_pool("fork\nserver")
        .with_workers(Workers::new(1, 2).with_processes(4))
        .with_fallback(Fallback::new(
            Flavor::Processes,
            Flavor::Threads,
            "two\nlines",
        ))
        .with_env_rejected(vec![RejectedVar::new("UNIRUN_MODE", "a\r\nb", "x")]);
    let line = trace.to_string();
    assert_one_line(&line);
    for part in [
        "name=\"bad\\nname\"",
        "workers=1 blocking<=2 processes=4",
        "cpu_bound=true",
        "io_bound=false",
        "parent threads=3",
        "process pool: fork\\nserver",
        "(two\\nlines)",
        "UNIRUN_MODE=\"a\\r\\nb\"",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

#[test]
fn every_reason_displays_on_one_line() {
    for reason in [
        Reason::Provided,
        Reason::ForcedThreads { var: None },
        Reason::ForcedProcess { var: None },
        Reason::ForcedProcessFallback,
        Reason::Explicit {
            flavor: Flavor::Tokio,
        },
        Reason::AutoDisabled,
        Reason::ConfigFlavor {
            flavor: Flavor::Smol,
            from_env: true,
        },
        Reason::AmbientTokio,
        Reason::CpuBoundGil,
        Reason::Default,
        Reason::ReusedParent,
    ] {
        let text = reason.to_string();
        assert!(!text.is_empty());
        assert_one_line(&text);
    }
    assert_eq!(
        Reason::ConfigFlavor {
            flavor: Flavor::Smol,
            from_env: true
        }
        .to_string(),
        "env flavor smol"
    );
}

#[test]
fn json_has_every_key() {
    let trace = DecisionTrace::new(
        Flavor::Auto,
        Flavor::Threads,
        Reason::ForcedProcess {
            var: Some("UNIRUN_FORCE_PROCESS"),
        },
    )
    .with_reason(Reason::ForcedProcessFallback)
    .with_name("ingest")
    .with_thread_mode(ThreadMode::Gil)
    .with_workers(Workers::new(2, 64))
    .with_hints(Hints::new(Some(true), None))
    .with_env_applied(vec![EnvOverride::new(
        "UNIRUN_FORCE_PROCESS",
        "true",
        "force_process",
    )])
    .with_env_rejected(vec![RejectedVar::new(
        "UNIRUN_THREAD_MODE",
        "gli",
        "auto, gil or nogil",
    )])
    .with_fallback(Fallback::new(
        Flavor::Processes,
        Flavor::Threads,
        "not compiled in",
    ))
    .with_parent_threads(5)
    .with_process_pool("fork server (unirun::process::init)");

    let json = serde_json::to_string(&trace).unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "requested",
        "resolved",
        "reasons",
        "thread_mode",
        "workers",
        "name",
        "hints",
        "env_applied",
        "env_rejected",
        "fallbacks",
        "parent_threads",
        "process_pool",
    ] {
        assert!(keys.contains(&key), "{key} missing from {json}");
    }
    assert_eq!(v["requested"], "auto");
    assert_eq!(v["resolved"], "threads");
    assert_eq!(v["thread_mode"], "gil");
    assert_eq!(v["name"], "ingest");
    assert_eq!(v["reasons"][0]["kind"], "forced_process");
    assert_eq!(v["reasons"][0]["var"], "UNIRUN_FORCE_PROCESS");
    assert_eq!(v["reasons"][1]["kind"], "forced_process_fallback");
    assert_eq!(v["workers"]["cpu"], 2);
    assert_eq!(v["workers"]["blocking_cap"], 64);
    assert_eq!(v["workers"]["processes"], Value::Null);
    assert_eq!(v["hints"]["cpu_bound"], true);
    assert_eq!(v["env_applied"][0]["var"], "UNIRUN_FORCE_PROCESS");
    assert_eq!(v["env_applied"][0]["value"], "true");
    assert_eq!(v["env_applied"][0]["field"], "force_process");
    assert_eq!(v["env_rejected"][0]["var"], "UNIRUN_THREAD_MODE");
    assert_eq!(v["env_rejected"][0]["value"], "gli");
    assert_eq!(v["env_rejected"][0]["expected"], "auto, gil or nogil");
    assert_eq!(v["fallbacks"][0]["from"], "processes");
    assert_eq!(v["fallbacks"][0]["to"], "threads");
    assert_eq!(v["parent_threads"], 5);
    assert_eq!(v["process_pool"], "fork server (unirun::process::init)");

    let explicit = serde_json::to_value(Reason::Explicit {
        flavor: Flavor::Smol,
    })
    .unwrap();
    assert_eq!(
        explicit,
        serde_json::json!({"kind": "explicit", "flavor": "smol"})
    );
}
