//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;

/// Names of this process's threads (Linux: `/proc/self/task/*/comm`, at most 15 bytes each).
pub(crate) fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// How many threads of this process have a name starting with `prefix`.
pub(crate) fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Spins (yielding) until `done()` holds. Used only where the awaited event
/// has no notification to wait on (a thread exiting); never a timing check.
pub(crate) fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        std::thread::yield_now();
    }
}

/// The env var that tells a re-executed test binary it is the child.
pub(crate) const CHILD_ENV: &str = "UNIRUN_TEST_CHILD";

/// Runs test `name` of the current test binary alone in a fresh process and
/// asserts it passed. Returns true in the child, where the caller does the work.
pub(crate) fn in_child_process(name: &str) -> bool {
    if std::env::var_os(CHILD_ENV).is_some() {
        return true;
    }
    run_child(name, &[]);
    false
}

/// Runs test `name` again in a child process with
/// `UNIRUN_COMPAT_MODE=passthrough` and asserts it passed; in that child,
/// does nothing. The caller then runs the test's body in its own mode.
pub(crate) fn also_in_passthrough(name: &str) {
    if std::env::var_os(CHILD_ENV).is_none() {
        run_child(name, &[("UNIRUN_COMPAT_MODE", "passthrough")]);
    }
}

/// Whether this process runs the compat modules in passthrough mode.
pub(crate) fn passthrough() -> bool {
    std::env::var("UNIRUN_COMPAT_MODE").is_ok_and(|v| v.eq_ignore_ascii_case("passthrough"))
}

/// Runs test `name` of this test binary alone in a child with `envs` set;
/// asserts it passed.
fn run_child(name: &str, envs: &[(&str, &str)]) {
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .envs(envs.iter().copied())
        .output()
        .expect("re-run test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child test {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child test {name} did not run:\n{stdout}"
    );
}
