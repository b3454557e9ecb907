use super::*;
use crate::env::{EnvOverride, RejectedVar, ValueSource};
use crate::trace::{Reason, Workers};
use crate::Flavor;

#[test]
fn the_json_writer_agrees_with_serde_json() {
    let trace = DecisionTrace::new(
        Flavor::Auto,
        Flavor::Threads,
        Reason::ConfigFlavor {
            flavor: Flavor::Threads,
            from_env: true,
        },
    )
    .with_name("quote\"and\nnewline\u{1}")
    .with_workers(Workers::new(2, 64))
    .with_env_applied(vec![
        EnvOverride::new("UNIRUN_MAX_WORKERS", "2", "max_workers"),
        EnvOverride::new("UNIRUN_MODE", "threads", "flavor")
            .with_source(ValueSource::EnvFile("ci/.env".into())),
    ])
    .with_env_rejected(vec![RejectedVar::new(
        "UNIRUN_THREAD_MODE",
        "gli",
        "auto, gil or nogil",
    )]);
    let ours: serde_json::Value = serde_json::from_str(&json::to_string(&trace).unwrap()).unwrap();
    assert_eq!(ours, serde_json::to_value(&trace).unwrap());
    let text = json::to_string(&trace).unwrap();
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn trace_values_parse_and_bad_ones_name_the_accepted_values() {
    assert_eq!(parse_trace("1"), Ok(TraceOutput::Text));
    assert_eq!(parse_trace("Text"), Ok(TraceOutput::Text));
    assert_eq!(parse_trace(" json "), Ok(TraceOutput::Json));
    assert_eq!(parse_trace("0"), Ok(TraceOutput::Off));
    assert_eq!(parse_trace("verbose"), Err("0, 1, text or json"));
}
