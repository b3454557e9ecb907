//! Feature `tracing`: decisions, environment warnings and scope lifecycles
//! arrive as `tracing` events, seen here by a recording subscriber of our
//! own installed for the test's thread only.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use unirun::{Flavor, Run, RuntimeConfig};

/// One event: its target, level and fields (`message` included).
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Seen {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    fn seen(&self, target: &str) -> Vec<Seen> {
        let all = self.0.lock().unwrap();
        all.iter().filter(|s| s.target == target).cloned().collect()
    }
}

#[test]
fn decisions_and_scope_lifecycles_are_info_events() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let run = Run::builder()
            .name("traced-scope")
            .flavor(Flavor::Threads)
            .build()
            .unwrap();
        let pending = run.spawn(std::future::pending::<()>());
        run.shutdown_now();
        assert!(pending.join().unwrap_err().is_cancelled());
    });

    let decisions = recorder.seen("unirun::decision");
    let decision = decisions
        .iter()
        .find(|s| s.fields.get("scope").map(String::as_str) == Some("traced-scope"))
        .unwrap_or_else(|| panic!("no decision event: {decisions:?}"));
    assert_eq!(decision.level, Level::INFO);
    assert_eq!(decision.fields["requested"], "threads");
    assert_eq!(decision.fields["resolved"], "threads");
    assert!(
        decision.fields["reasons"].contains("explicit"),
        "{decision:?}"
    );

    let scope = recorder.seen("unirun::scope");
    let names: Vec<&str> = scope.iter().map(|s| s.fields["name"].as_str()).collect();
    assert_eq!(names, ["traced-scope", "traced-scope"], "{scope:?}");
    assert!(scope.iter().all(|s| s.level == Level::INFO));
    assert_eq!(scope[0].fields["flavor"], "threads");
    let ended = &scope[1];
    assert_eq!(ended.fields["how"], "now");
    assert_eq!(ended.fields["cancelled"], "1");
    assert!(ended.fields.contains_key("took_us"), "{ended:?}");
}

#[test]
fn unknown_variables_are_warn_events_instead_of_stderr() {
    let path = std::env::temp_dir().join(format!("unirun-tracing-{}.env", std::process::id()));
    std::fs::write(&path, "UNIRUN_MAX_WORKER=2\n").unwrap();
    let recorder = Recorder::default();
    let config =
        tracing::subscriber::with_default(recorder.clone(), || RuntimeConfig::from_env_file(&path));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(config.unwrap(), RuntimeConfig::default());
    let warnings = recorder.seen("unirun::env");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].level, Level::WARN);
    let message = &warnings[0].fields["message"];
    assert!(
        message.contains("UNIRUN_MAX_WORKER ")
            && message.contains("did you mean UNIRUN_MAX_WORKERS"),
        "{message}"
    );
}
