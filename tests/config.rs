//! Configuration from code, `UNIRUN_*` variables and `.env` files.
//!
//! Only the two `from_env_*` tests read the real process environment, and
//! they do it in a child process (this test binary re-run with `--exact`), so
//! nothing here races with other tests over environment variables.
#![cfg(feature = "std")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use unirun::{CompatMode, Error, Flavor, RuntimeConfig, ThreadMode};
use unirun_test_support::child::{is_child, run_child};

fn parse_err(vars: &[(&str, &str)]) -> Error {
    RuntimeConfig::from_vars(vars.iter().copied()).expect_err("expected an error")
}

/// Asserts that the error message names every part.
fn assert_names(err: &Error, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "{part:?} not in {msg:?}");
    }
}

// ---- bad values -------------------------------------------------------------

#[test]
fn bad_thread_mode_names_var_value_and_choices() {
    let err = parse_err(&[("UNIRUN_THREAD_MODE", "gli")]);
    assert!(matches!(err, Error::InvalidEnv { .. }));
    assert_eq!(
        err.to_string(),
        r#"invalid UNIRUN_THREAD_MODE="gli": expected auto, gil or nogil"#
    );
}

#[test]
fn bad_max_workers_names_var_value_and_choices() {
    for value in ["abc", "0", "-3", "2.5"] {
        let err = parse_err(&[("UNIRUN_MAX_WORKERS", value)]);
        assert_names(
            &err,
            &[
                "UNIRUN_MAX_WORKERS",
                &format!("{value:?}"),
                "an integer >= 1",
            ],
        );
    }
}

#[test]
fn bad_compat_mode_names_var_value_and_choices() {
    let err = parse_err(&[("UNIRUN_COMPAT_MODE", "maybe")]);
    assert_names(
        &err,
        &["UNIRUN_COMPAT_MODE", "\"maybe\"", "managed or passthrough"],
    );
}

#[test]
fn bad_mode_names_var_value_and_choices() {
    for var in ["UNIRUN_MODE", "UNIRUN_FLAVOR"] {
        let err = parse_err(&[(var, "fibers")]);
        assert_names(
            &err,
            &[
                var,
                "\"fibers\"",
                "auto, threads, processes, smol, tokio, shared or cluster",
            ],
        );
    }
}

#[test]
fn near_miss_flavors_are_rejected() {
    // The accepted set is exact: no singular forms, no abbreviations.
    for value in ["thread", "process", "async", "rayon"] {
        parse_err(&[("UNIRUN_MODE", value)]);
    }
}

#[test]
fn bad_bools_name_var_value_and_choices() {
    for var in [
        "UNIRUN_AUTO",
        "UNIRUN_CPU_BOUND",
        "UNIRUN_IO_BOUND",
        "UNIRUN_FORCE_THREADS",
        "UNIRUN_FORCE_PROCESS",
    ] {
        let err = parse_err(&[(var, "perhaps")]);
        assert_names(
            &err,
            &[var, "\"perhaps\"", "1, 0, true, false, yes, no, on, off"],
        );
    }
}

#[test]
fn mode_and_flavor_conflict_names_both() {
    let err = parse_err(&[("UNIRUN_MODE", "threads"), ("UNIRUN_FLAVOR", "smol")]);
    assert!(matches!(err, Error::ConflictingEnv { .. }));
    assert_names(
        &err,
        &["UNIRUN_MODE", "\"threads\"", "UNIRUN_FLAVOR", "\"smol\""],
    );
}

#[test]
fn mode_and_flavor_may_agree() {
    let config =
        RuntimeConfig::from_vars([("UNIRUN_MODE", "smol"), ("UNIRUN_FLAVOR", " SMOL ")]).unwrap();
    assert_eq!(config.flavor, Some(Flavor::Smol));
}

#[test]
fn first_bad_variable_is_reported_in_a_fixed_order() {
    // UNIRUN_AUTO comes before UNIRUN_THREAD_MODE however the input is ordered.
    let err = parse_err(&[("UNIRUN_THREAD_MODE", "gli"), ("UNIRUN_AUTO", "perhaps")]);
    assert_names(&err, &["UNIRUN_AUTO"]);
}

#[test]
fn max_workers_zero_in_code_fails_validation() {
    let err = RuntimeConfig::default()
        .max_workers(0)
        .validate()
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidSetting {
            setting: "max_workers",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "invalid max_workers=0: expected an integer >= 1"
    );
}

// ---- good values ------------------------------------------------------------

#[test]
fn every_variable_parses() {
    let config = RuntimeConfig::from_vars([
        ("UNIRUN_MODE", "processes"),
        ("UNIRUN_AUTO", "off"),
        ("UNIRUN_CPU_BOUND", "YES"),
        ("UNIRUN_IO_BOUND", "0"),
        ("UNIRUN_MAX_WORKERS", " 12 "),
        ("UNIRUN_THREAD_MODE", "NoGil"),
        ("UNIRUN_FORCE_THREADS", "true"),
        ("UNIRUN_FORCE_PROCESS", "False"),
        ("UNIRUN_COMPAT_MODE", "passthrough"),
    ])
    .unwrap();
    let expected = RuntimeConfig::default()
        .flavor(Flavor::Processes)
        .auto(false)
        .cpu_bound(true)
        .io_bound(false)
        .max_workers(12)
        .thread_mode(ThreadMode::Nogil)
        .force_threads(true)
        .force_process(false)
        .compat_mode(CompatMode::Passthrough);
    assert_eq!(config, expected);
}

#[test]
fn every_flavor_parses_from_either_name() {
    let all = [
        ("auto", Flavor::Auto),
        ("threads", Flavor::Threads),
        ("processes", Flavor::Processes),
        ("smol", Flavor::Smol),
        ("tokio", Flavor::Tokio),
        ("shared", Flavor::Shared),
    ];
    for (word, flavor) in all {
        for var in ["UNIRUN_MODE", "UNIRUN_FLAVOR"] {
            let config = RuntimeConfig::from_vars([(var, word)]).unwrap();
            assert_eq!(config.flavor, Some(flavor), "{var}={word}");
        }
        assert_eq!(flavor.to_string(), word);
    }
}

#[test]
fn every_bool_spelling_parses() {
    for (word, value) in [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("on", true),
        ("ON", true),
        ("0", false),
        ("false", false),
        ("no", false),
        ("off", false),
        (" Off ", false),
    ] {
        let config = RuntimeConfig::from_vars([("UNIRUN_AUTO", word)]).unwrap();
        assert_eq!(config.auto, Some(value), "{word:?}");
    }
}

#[test]
fn thread_and_compat_modes_parse() {
    for (word, mode) in [
        ("auto", ThreadMode::Auto),
        ("gil", ThreadMode::Gil),
        ("nogil", ThreadMode::Nogil),
    ] {
        let config = RuntimeConfig::from_vars([("UNIRUN_THREAD_MODE", word)]).unwrap();
        assert_eq!(config.thread_mode, Some(mode));
    }
    for (word, mode) in [
        ("managed", CompatMode::Managed),
        ("passthrough", CompatMode::Passthrough),
    ] {
        let config = RuntimeConfig::from_vars([("UNIRUN_COMPAT_MODE", word)]).unwrap();
        assert_eq!(config.compat_mode, Some(mode));
    }
}

#[test]
fn empty_values_and_unknown_keys_are_ignored() {
    let config = RuntimeConfig::from_vars([
        ("UNIRUN_MODE", ""),
        ("UNIRUN_MAX_WORKERS", "   "),
        ("UNIRUN_SOMETHING_ELSE", "whatever"),
        ("unirun_mode", "fibers"), // keys are case-sensitive
        ("PATH", "/bin"),
    ])
    .unwrap();
    assert_eq!(config, RuntimeConfig::default());
}

#[test]
fn later_duplicates_win() {
    let config =
        RuntimeConfig::from_vars([("UNIRUN_MAX_WORKERS", "abc"), ("UNIRUN_MAX_WORKERS", "3")])
            .unwrap();
    assert_eq!(config.max_workers, Some(3));
}

// ---- .env files -------------------------------------------------------------

/// A file in the temp dir, unique per test and process, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("unirun-config-test-{}-{n}.env", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn env_file_reads_the_same_keys() {
    let file = TempFile::new(
        "# unirun settings shared by local runs and CI\n\
         \n\
         export UNIRUN_MODE=threads\n\
         UNIRUN_MAX_WORKERS=4 # inline comment\n\
         UNIRUN_THREAD_MODE='gil'\n\
         UNIRUN_COMPAT_MODE=\"passthrough\"  # after quotes too\n\
         \t  UNIRUN_IO_BOUND = yes\n\
         DATABASE_URL=postgres://u:p@host/db#frag\n\
         GREETING=\"hello # not a comment\"\n\
         UNIRUN_CPU_BOUND=\n",
    );
    let config = RuntimeConfig::from_env_file(file.path()).unwrap();
    let expected = RuntimeConfig::default()
        .flavor(Flavor::Threads)
        .max_workers(4)
        .thread_mode(ThreadMode::Gil)
        .compat_mode(CompatMode::Passthrough)
        .io_bound(true);
    assert_eq!(config, expected);
}

#[test]
fn env_file_handles_crlf_line_endings() {
    let file = TempFile::new("UNIRUN_AUTO=off\r\nUNIRUN_MAX_WORKERS=\"2\"\r\n");
    let config = RuntimeConfig::from_env_file(file.path()).unwrap();
    assert_eq!(config, RuntimeConfig::default().auto(false).max_workers(2));
}

#[test]
fn missing_env_file_names_the_path() {
    let path = std::env::temp_dir().join(format!(
        "unirun-config-test-{}-does-not-exist.env",
        std::process::id()
    ));
    let err = RuntimeConfig::from_env_file(&path).unwrap_err();
    assert!(matches!(err, Error::EnvFile { line: None, .. }));
    assert_names(&err, &[&path.display().to_string()]);
}

#[test]
fn env_file_syntax_error_names_path_and_line() {
    let file = TempFile::new("# ok\nUNIRUN_AUTO=1\nthis line has no equals sign\n");
    let err = RuntimeConfig::from_env_file(file.path()).unwrap_err();
    assert!(
        matches!(err, Error::EnvFile { line: Some(3), .. }),
        "{err:?}"
    );
    assert_names(&err, &[&file.path().display().to_string(), "line 3"]);

    let file = TempFile::new("UNIRUN_MODE=\"threads\n");
    let err = RuntimeConfig::from_env_file(file.path()).unwrap_err();
    assert_names(&err, &["line 1", "UNIRUN_MODE"]);
}

#[test]
fn non_utf8_bytes_on_an_unrelated_line_are_not_fatal() {
    let path = std::env::temp_dir().join(format!(
        "unirun-config-test-{}-latin1.env",
        std::process::id()
    ));
    let mut bytes = b"GREETING=caf".to_vec();
    bytes.push(0xE9); // Latin-1 e-acute: not UTF-8
    bytes.extend_from_slice(b"\nUNIRUN_MAX_WORKERS=2\n");
    std::fs::write(&path, bytes).unwrap();
    let config = RuntimeConfig::from_env_file(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(config.unwrap(), RuntimeConfig::default().max_workers(2));
}

#[test]
fn the_real_environment_wins_over_the_env_file() {
    if is_child() {
        let file = TempFile::new("UNIRUN_MAX_WORKERS=4\nUNIRUN_IO_BOUND=1\n");
        let config = RuntimeConfig::from_env_file(file.path()).unwrap();
        assert_eq!(
            config,
            RuntimeConfig::default().max_workers(1).io_bound(true)
        );
        return;
    }
    run_child(
        "the_real_environment_wins_over_the_env_file",
        &[("UNIRUN_MAX_WORKERS", "1")],
    );
}

#[test]
fn env_file_bad_value_names_path_line_var_value_and_choices() {
    let file = TempFile::new("UNIRUN_AUTO=1\n\nUNIRUN_THREAD_MODE=gli\n");
    let err = RuntimeConfig::from_env_file(file.path()).unwrap_err();
    assert_names(
        &err,
        &[
            &file.path().display().to_string(),
            "line 3",
            "UNIRUN_THREAD_MODE",
            "\"gli\"",
            "auto, gil or nogil",
        ],
    );

    let file = TempFile::new("UNIRUN_MODE=threads\nUNIRUN_FLAVOR=smol\n");
    let err = RuntimeConfig::from_env_file(file.path()).unwrap_err();
    assert_names(&err, &["line 2", "UNIRUN_MODE", "UNIRUN_FLAVOR"]);
}

// ---- the real process environment, in a child process -----------------------

#[test]
fn an_unknown_unirun_variable_is_warned_with_the_closest_known_one() {
    if is_child() {
        let _ = unirun::get_executor();
        return;
    }
    let stderr = run_child(
        "an_unknown_unirun_variable_is_warned_with_the_closest_known_one",
        &[("UNIRUN_MAX_WORKER", "3")],
    )
    .stderr;
    assert!(
        stderr.contains(
            "unknown variable UNIRUN_MAX_WORKER is ignored; did you mean UNIRUN_MAX_WORKERS?"
        ),
        "{stderr}"
    );
}

#[test]
fn from_env_reads_the_process_environment() {
    if is_child() {
        let config = RuntimeConfig::from_env().unwrap();
        let expected = RuntimeConfig::default()
            .flavor(Flavor::Shared)
            .cpu_bound(true)
            .max_workers(3)
            .thread_mode(ThreadMode::Gil)
            .force_process(true);
        assert_eq!(config, expected);
        return;
    }
    run_child(
        "from_env_reads_the_process_environment",
        &[
            ("UNIRUN_FLAVOR", "shared"),
            ("UNIRUN_CPU_BOUND", "on"),
            ("UNIRUN_MAX_WORKERS", "3"),
            ("UNIRUN_THREAD_MODE", "gil"),
            ("UNIRUN_FORCE_PROCESS", "1"),
            ("UNIRUN_FUTURE_KNOB", "ignored"),
        ],
    );
}

#[test]
fn from_env_rejects_and_lenient_reader_reports() {
    if is_child() {
        let err = RuntimeConfig::from_env().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid UNIRUN_THREAD_MODE="gli": expected auto, gil or nogil"#
        );
        // The shared default never fails: it skips the bad value and says so.
        let _ = unirun::get_executor();
        let trace = unirun::last_decision().expect("the default executor decided");
        let rejected = trace.env_rejected();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].var(), "UNIRUN_THREAD_MODE");
        assert_eq!(rejected[0].value(), "gli");
        assert_eq!(trace.hints().io_bound(), Some(true));
        return;
    }
    run_child(
        "from_env_rejects_and_lenient_reader_reports",
        &[("UNIRUN_THREAD_MODE", "gli"), ("UNIRUN_IO_BOUND", "yes")],
    );
}
