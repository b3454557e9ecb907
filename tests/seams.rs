//! The seam matrix: every way work runs in unirun (a task, a blocking
//! closure, a timer, a tokio socket, a smol socket, a process call on the
//! shared pool and on a `Processes` scope, `to_process`, each compat
//! module) crossed with every context change (plain, in a forked child,
//! after `reset()`, after `configure()`, after a tokio runtime it met was
//! dropped, gil mode, `SIGCHLD` ignored, `SIGPIPE` at its default, thread
//! creation failing).
//!
//! Each cell is a process of its own (this binary re-run with `--exact`
//! and the way in `SEAM_CELL_WAY`), because every context change is
//! process-wide. A cell sets its context up, runs the way, checks the
//! value, then calls `reset()` and checks that the threads, descriptors
//! and child processes are back to what they were before it started
//! (`tests/seams/probe.rs`). It must give the value, or a typed error
//! where the context allows one, within its alarm: a cell that hangs is
//! killed by `SIGALRM` and reported as hung. One test per context runs
//! its cells side by side and prints its column of the matrix (shown
//! with `--nocapture`, also on success).
//!
//! Cells known to fail are listed in [`AWAITING`] with the issue-19 item
//! they belong to: they still run and print "awaiting", but do not fail
//! the test; one that passes prints "now passes: remove from AWAITING".
//!
//! Needs every backend (`--all-features`) and Linux (`/proc/self`).
#![cfg(all(
    target_os = "linux",
    feature = "process-backend",
    feature = "tokio-backend",
    feature = "smol-backend"
))]

#[path = "seams/contexts.rs"]
mod contexts;
#[path = "seams/probe.rs"]
mod probe;
#[path = "seams/ways.rs"]
mod ways;

use std::fs::File;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use contexts::{Ctx, RESULT_TAG};
use ways::{Way, WAYS};

/// Cells known to fail, with the issue-19 item they belong to. Every other
/// cell of the matrix passes. What is left is not unirun's own global, and
/// is documented as a limit in `src/io.rs` ("smol futures"):
/// async-io keeps one reactor per process image in a private static, and
/// a forked child shares its epoll instance with the parent (the parent's
/// `async-io` thread may take the child's readiness events), so an
/// async-net socket in a forked child does not wake. Fixing it needs a
/// fork-aware async-io (a reactor re-created per process) or a way for
/// unirun to refuse async-io in a child with a clear error.
const AWAITING: &[(Way, Ctx, u8)] = &[(Way::SmolSocket, Ctx::Forked, 3)];

/// The env var that names the way a re-run cell runs.
const WAY_ENV: &str = "SEAM_CELL_WAY";

/// A cell that has not printed its result when its alarm fires is hung;
/// `SIGALRM`'s default action ends it. Generous: a cell takes well under
/// a second when nothing is wrong.
const ALARM_SECS: u32 = 25;

/// How long the parent waits for a cell process beyond its alarm before
/// it fails the test itself (a cell that ignored its alarm).
const PARENT_LIMIT: Duration = Duration::from_secs(ALARM_SECS as u64 + 60);

#[test]
fn every_way_works_plainly() {
    matrix_column("every_way_works_plainly", Ctx::Plain);
}

#[test]
fn every_way_works_or_refuses_clearly_in_a_forked_child() {
    matrix_column(
        "every_way_works_or_refuses_clearly_in_a_forked_child",
        Ctx::Forked,
    );
}

#[test]
fn every_way_works_again_after_reset() {
    matrix_column("every_way_works_again_after_reset", Ctx::AfterReset);
}

#[test]
fn every_way_works_again_after_configure() {
    matrix_column("every_way_works_again_after_configure", Ctx::AfterConfigure);
}

#[test]
fn every_way_works_after_a_tokio_runtime_it_met_is_dropped() {
    matrix_column(
        "every_way_works_after_a_tokio_runtime_it_met_is_dropped",
        Ctx::DroppedRuntime,
    );
}

#[test]
fn every_way_works_in_gil_mode() {
    matrix_column("every_way_works_in_gil_mode", Ctx::Gil);
}

#[test]
fn every_way_works_when_the_host_ignores_sigchld() {
    matrix_column(
        "every_way_works_when_the_host_ignores_sigchld",
        Ctx::SigchldIgnored,
    );
}

#[test]
fn every_way_works_and_never_raises_sigpipe_at_its_default() {
    matrix_column(
        "every_way_works_and_never_raises_sigpipe_at_its_default",
        Ctx::SigpipeDefault,
    );
}

#[test]
fn every_way_works_or_errs_when_no_thread_can_be_created() {
    matrix_column(
        "every_way_works_or_errs_when_no_thread_can_be_created",
        Ctx::NoNewThreads,
    );
}

/// In a cell process: runs the cell. Otherwise: runs every way under
/// `ctx`, each in a child process, prints the column and fails on any
/// cell that is neither right nor awaited.
fn matrix_column(test: &str, ctx: Ctx) {
    if let Ok(name) = std::env::var(WAY_ENV) {
        let way = Way::from_name(&name).unwrap_or_else(|| panic!("unknown way {name:?}"));
        // SAFETY: alarm(2) only arms this process's timer; SIGALRM is at
        // its default (terminate) in a fresh test process.
        unsafe { libc::alarm(ALARM_SECS) };
        contexts::cell(ctx, way);
        return;
    }
    let (tx, rx) = mpsc::channel();
    for (index, &way) in WAYS.iter().enumerate() {
        let tx = tx.clone();
        let test = test.to_string();
        std::thread::spawn(move || {
            let _ = tx.send((index, run_cell(&test, ctx, way)));
        });
    }
    drop(tx);
    let mut verdicts: Vec<Option<Verdict>> = WAYS.iter().map(|_| None).collect();
    for _ in WAYS {
        // Every cell ends within its alarm; PARENT_LIMIT only turns a
        // cell that somehow outlives it into a failure instead of a hang.
        match rx.recv_timeout(PARENT_LIMIT) {
            Ok((index, verdict)) => verdicts[index] = Some(verdict),
            Err(_) => break,
        }
    }
    let mut column = format!("\nseam matrix, context: {}\n", ctx.name());
    let mut failures = Vec::new();
    for (&way, verdict) in WAYS.iter().zip(verdicts) {
        let verdict = verdict.unwrap_or_else(|| {
            Verdict::Fail(format!(
                "the cell process outlived its alarm by {PARENT_LIMIT:?}"
            ))
        });
        let awaiting = AWAITING
            .iter()
            .find(|(w, c, _)| *w == way && *c == ctx)
            .map(|&(_, _, item)| item);
        let shown = match (&verdict, awaiting) {
            (Verdict::Ok, None) => "ok".to_string(),
            (Verdict::TypedError(text), None) if ctx.errors_allowed(way) => {
                format!("typed error: {text}")
            }
            (Verdict::TypedError(text), None) => {
                failures.push(way);
                format!("FAIL: unexpected error: {text}")
            }
            (Verdict::Skip(text), _) => format!("skipped: {text}"),
            (Verdict::Fail(text), None) => {
                failures.push(way);
                format!("FAIL: {text}")
            }
            (Verdict::Ok, Some(item)) => {
                format!("ok; now passes: remove from AWAITING (item {item})")
            }
            (Verdict::TypedError(text), Some(item)) if ctx.errors_allowed(way) => {
                format!("typed error: {text}; now passes: remove from AWAITING (item {item})")
            }
            (Verdict::TypedError(text) | Verdict::Fail(text), Some(item)) => {
                format!("awaiting item {item}: {text}")
            }
        };
        column.push_str(&format!("  {:<28} {shown}\n", way.name()));
    }
    println!("{column}");
    assert!(
        failures.is_empty(),
        "seam cells failed under `{}`: {:?} (see the matrix above)",
        ctx.name(),
        failures.iter().map(|w| w.name()).collect::<Vec<_>>()
    );
}

/// How a cell ended, as the parent judges it.
enum Verdict {
    Ok,
    TypedError(String),
    Skip(String),
    Fail(String),
}

/// Runs one cell: this binary again, only test `test`, with the way named
/// in the environment. Output goes to files, not pipes, so a descendant
/// that outlives the cell cannot keep the parent reading.
fn run_cell(test: &str, ctx: Ctx, way: Way) -> Verdict {
    let dir = std::env::temp_dir();
    let stem = format!(
        "unirun-seam-{}-{test}-{}",
        std::process::id(),
        way.name().replace([' ', '(', ')'], "_")
    );
    let out_path = dir.join(format!("{stem}.out"));
    let err_path = dir.join(format!("{stem}.err"));
    let spawned = (|| {
        let out = File::create(&out_path)?;
        let err = File::create(&err_path)?;
        Command::new(std::env::current_exe()?)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(WAY_ENV, way.name())
            .envs(ctx.env().iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
    })();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    let status = match spawned {
        Ok(status) => status,
        Err(err) => return Verdict::Fail(format!("could not run the cell: {err}")),
    };
    let result = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(RESULT_TAG))
        .map(str::trim);
    let last_step = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("SEAM-STEP "))
        .unwrap_or("start");
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    };
    match (result, status.success()) {
        (Some(line), true) => {
            let (kind, text) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "ok" => Verdict::Ok,
                "typed" => Verdict::TypedError(text.to_string()),
                "skip" => Verdict::Skip(text.to_string()),
                _ => Verdict::Fail(text.to_string()),
            }
        }
        _ => {
            use std::os::unix::process::ExitStatusExt;
            let how = match status.signal() {
                Some(libc::SIGALRM) => {
                    format!("hung at step `{last_step}` (its {ALARM_SECS} s alarm ended it)")
                }
                Some(signal) => format!("died of signal {signal} at step `{last_step}`"),
                None => format!("exited with {status} at step `{last_step}`"),
            };
            Verdict::Fail(format!("{how}; stderr: {tail}"))
        }
    }
}
