//! Re-running one test of the current test binary in a fresh process.
//!
//! Tests that fork, crash on purpose, or depend on the process's
//! environment and global state at start-up run their body in a child:
//! the parent re-executes its own test binary with only that test
//! selected (`--exact`) and checks that it ran and passed.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Set (to `1`) in the environment of every child [`run_child`] starts.
/// unirun ignores `UNIRUN_TEST*` variables, so it is never reported as an
/// unknown setting.
pub const CHILD_ENV: &str = "UNIRUN_TEST_CHILD";

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// What a child test printed.
#[derive(Debug)]
pub struct ChildOutput {
    /// The test harness's output and the test's own `println!`s.
    pub stdout: String,
    /// The test's `eprintln!`s, panic messages and unirun's warnings.
    pub stderr: String,
}

/// How long [`run_child`] lets a child run before it kills it and fails:
/// beyond the longest child body (a few hundred forks under its own
/// watchdog), so only a child that hangs outside its watchdog (at exit,
/// in a fork) reaches it.
pub const CHILD_LIMIT: Duration = Duration::from_secs(600);

/// Runs test `name` of the current test binary alone in a child process
/// whose only `UNIRUN_*` variables are `envs` (those of the developer's
/// shell are removed, so the child sees exactly what the test sets), and
/// asserts that it ran and passed. A `name` that selects no test fails
/// here rather than passing without running anything, and a child still
/// running after [`CHILD_LIMIT`] is killed and fails the test.
///
/// # Panics
///
/// If the child fails or hangs, or its output does not show `name`
/// passing; the message carries the child's output.
pub fn run_child(name: &str, envs: &[(&str, &str)]) -> ChildOutput {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("UNIRUN_") {
            command.env_remove(key);
        }
    }
    let child = command
        .env(CHILD_ENV, "1")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    // Collects the output; ends when the child exits (or is killed below).
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    if finished.recv_timeout(CHILD_LIMIT).is_err() {
        kill(pid);
        panic!("child test {name}: still running after {CHILD_LIMIT:?}, so it hangs (killed)");
    }
    let output = waiter
        .join()
        .expect("the output collector does not panic")
        .expect("the child's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child test {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Exactly the one test ran and passed (the test's own output may
    // interleave with the harness's `test {name} ... ok` line).
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child test {name} did not run:\n{stdout}"
    );
    ChildOutput { stdout, stderr }
}

/// Kills our own hung child, by its id (its `Child` is inside the
/// collector's wait). Best effort: the test fails either way.
fn kill(pid: u32) {
    if cfg!(unix) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// The usual opening of a test whose body must run in a fresh process:
/// in the parent, runs test `name` in a child (see [`run_child`]) and
/// returns false; in the child, returns true and the caller does the work.
///
/// ```no_run
/// #[test]
/// fn reads_the_environment_at_start_up() {
///     if !unirun_test_support::child::in_child_process("reads_the_environment_at_start_up") {
///         return;
///     }
///     // ... the body, in a process of its own ...
/// }
/// ```
pub fn in_child_process(name: &str) -> bool {
    if is_child() {
        return true;
    }
    run_child(name, &[]);
    false
}
