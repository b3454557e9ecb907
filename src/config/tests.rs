//! Unit tests of the layering and the lenient readers.

use super::from_env::from_vars_lenient;
use super::*;
use crate::env::EnvOverride;
use crate::flavor::{CompatMode, Flavor, ThreadMode};

#[test]
fn merged_over_does_not_apply_kill_switches() {
    let code = RuntimeConfig::default().force_threads(false);
    let env = RuntimeConfig::default().force_threads(true).auto(false);
    let merged = code.merged_over(&env);
    assert_eq!(merged.force_threads, Some(false));
    assert_eq!(merged.auto, Some(false));
}

#[test]
fn kill_switch_applies_even_when_false() {
    let code = RuntimeConfig::default().force_threads(true);
    let env = RuntimeConfig::default().force_threads(false);
    let (config, applied) = code.apply_env(&env);
    assert_eq!(config.force_threads, Some(false));
    assert_eq!(
        applied,
        [EnvOverride::new(
            "UNIRUN_FORCE_THREADS",
            "false",
            "force_threads"
        )]
    );
}

// ---- lenient reading --------------------------------------------------------

#[test]
fn lenient_reader_skips_and_reports_bad_values() {
    let (config, rejected) = from_vars_lenient([
        ("UNIRUN_THREAD_MODE", "gli"),
        ("UNIRUN_MAX_WORKERS", "2"),
        ("UNIRUN_AUTO", "perhaps"),
    ]);
    assert_eq!(config, RuntimeConfig::default().max_workers(2));
    let vars: Vec<&str> = rejected.iter().map(|r| r.var()).collect();
    assert_eq!(vars, ["UNIRUN_AUTO", "UNIRUN_THREAD_MODE"]);
    assert_eq!(
        rejected[1].to_string(),
        r#"UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)"#
    );
}

#[test]
fn lenient_reader_drops_both_sides_of_a_conflict() {
    let (config, rejected) =
        from_vars_lenient([("UNIRUN_MODE", "threads"), ("UNIRUN_FLAVOR", "smol")]);
    assert_eq!(config.flavor, None);
    let vars: Vec<&str> = rejected.iter().map(|r| r.var()).collect();
    assert_eq!(vars, ["UNIRUN_MODE", "UNIRUN_FLAVOR"]);
}

// ---- precedence -------------------------------------------------------------

#[test]
fn code_wins_and_env_fills() {
    let code = RuntimeConfig::default().flavor(Flavor::Smol).max_workers(8);
    let env = RuntimeConfig::from_vars([
        ("UNIRUN_MODE", "threads"),
        ("UNIRUN_MAX_WORKERS", "2"),
        ("UNIRUN_IO_BOUND", "1"),
        ("UNIRUN_THREAD_MODE", "gil"),
    ])
    .unwrap();
    let (config, applied) = code.clone().apply_env(&env);
    assert_eq!(config.flavor, Some(Flavor::Smol));
    assert_eq!(config.max_workers, Some(8));
    assert_eq!(config.io_bound, Some(true));
    assert_eq!(config.thread_mode, Some(ThreadMode::Gil));
    assert_eq!(
        applied,
        [
            EnvOverride::new("UNIRUN_IO_BOUND", "true", "io_bound"),
            EnvOverride::new("UNIRUN_THREAD_MODE", "gil", "thread_mode"),
        ]
    );
    assert_eq!(code.merged_over(&env), config);
}

#[test]
fn kill_switches_override_code() {
    let code = RuntimeConfig::default()
        .force_threads(false)
        .force_process(false)
        .compat_mode(CompatMode::Managed);
    let env = RuntimeConfig::from_vars([
        ("UNIRUN_FORCE_THREADS", "1"),
        ("UNIRUN_FORCE_PROCESS", "on"),
        ("UNIRUN_COMPAT_MODE", "passthrough"),
    ])
    .unwrap();

    // Merging alone keeps code's values ...
    let merged = code.clone().merged_over(&env);
    assert_eq!(merged, code);

    // ... the kill switches step replaces them, and names each override.
    let (config, applied) = merged.layer(&env, false, true); // the kill switches only
    assert_eq!(config.force_threads, Some(true));
    assert_eq!(config.force_process, Some(true));
    assert_eq!(config.compat_mode, Some(CompatMode::Passthrough));
    let applied: Vec<String> = applied.iter().map(ToString::to_string).collect();
    assert_eq!(
        applied,
        [
            "UNIRUN_FORCE_THREADS=true from the environment",
            "UNIRUN_FORCE_PROCESS=true from the environment",
            "UNIRUN_COMPAT_MODE=passthrough from the environment"
        ]
    );

    // apply_env does both steps at once.
    assert_eq!(code.apply_env(&env).0, config);
}

#[test]
fn force_threads_beats_force_process() {
    let env = RuntimeConfig::from_vars([
        ("UNIRUN_FORCE_THREADS", "yes"),
        ("UNIRUN_FORCE_PROCESS", "yes"),
    ])
    .unwrap();
    let (config, _) = RuntimeConfig::default().apply_env(&env);
    assert_eq!(config.forced_flavor(), Some(Flavor::Threads));

    // Env's FORCE_THREADS also beats code's force_process.
    let (config, _) = RuntimeConfig::default()
        .force_process(true)
        .apply_env(&RuntimeConfig::from_vars([("UNIRUN_FORCE_THREADS", "1")]).unwrap());
    assert_eq!(config.forced_flavor(), Some(Flavor::Threads));

    let only_process = RuntimeConfig::default().force_process(true);
    assert_eq!(only_process.forced_flavor(), Some(Flavor::Processes));
    let switched_off = RuntimeConfig::default()
        .force_threads(false)
        .force_process(false);
    assert_eq!(switched_off.forced_flavor(), None);
}

#[test]
fn conflict_is_dropped_and_reported() {
    let (config, problems) = parse_vars([
        (crate::env::MODE.name, "threads"),
        (crate::env::FLAVOR.name, "smol"),
    ]);
    assert_eq!(config.flavor, None);
    assert!(matches!(
        problems[..],
        [crate::env::Problem::Conflict { .. }]
    ));
    let (config, problems) = parse_vars([
        (crate::env::MODE.name, "threads"),
        (crate::env::FLAVOR.name, "THREADS"),
    ]);
    assert_eq!(config.flavor, Some(Flavor::Threads));
    assert!(problems.is_empty());
}

// ---- the .env reader's cost ---------------------------------------------------

/// A `.env` text of `lines` lines: unrelated keys, each known key defined
/// many times, an unknown `UNIRUN_*` key repeated, and `last` as the last line.
fn big_env_text(lines: usize, last: &str) -> String {
    let mut text = String::with_capacity(lines * 24);
    for i in 0..lines - 1 {
        match i % 4 {
            0 => text.push_str(&format!("APP_KEY_{i}=\"value {i}\"\n")),
            1 => text.push_str(&format!("UNIRUN_MAX_WORKERS={}\n", i % 7 + 1)),
            2 => text.push_str("UNIRUN_MAX_WORKER=3\n"),
            _ => text.push_str("# a comment\n"),
        }
    }
    text.push_str(last);
    text.push('\n');
    text
}

/// Writes `text` to a fresh file and reads it with `from_env_file`.
fn read_text(text: &str) -> Result<RuntimeConfig, crate::Error> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("unirun-config-unit-{}-{n}.env", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let result = RuntimeConfig::from_env_file(&path);
    let _ = std::fs::remove_file(&path);
    result
}

/// The reader scans the text for an entry's line at most once, for the
/// error it reports, never once per entry (50,000 lines would be 2.5
/// billion line visits); the counter of scanned lines proves the bound.
#[test]
fn a_50k_line_env_file_is_read_with_at_most_one_scan_of_its_lines() {
    use super::from_env::LINES_SCANNED;
    const LINES: usize = 50_000;

    LINES_SCANNED.with(|n| n.set(0));
    let config = read_text(&big_env_text(LINES, "UNIRUN_THREAD_MODE=gil")).unwrap();
    assert_eq!(config.thread_mode, Some(ThreadMode::Gil));
    // The last definition wins: line 49,997 (index 49,997 % 4 == 1).
    assert_eq!(config.max_workers, Some(49_997 % 7 + 1));
    assert_eq!(
        LINES_SCANNED.with(|n| n.get()),
        0,
        "no scan without an error"
    );

    let err = read_text(&big_env_text(LINES, "UNIRUN_THREAD_MODE=gli")).unwrap_err();
    assert!(
        matches!(
            err,
            crate::Error::EnvFile {
                line: Some(LINES),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("UNIRUN_THREAD_MODE"), "{err}");
    assert!(
        LINES_SCANNED.with(|n| n.get()) <= LINES,
        "the error's line costs one scan of the text, not one per entry"
    );
}
