//! What a cell leaves behind: threads, file descriptors and child
//! processes, read from `/proc/self` (Linux).

use std::time::{Duration, Instant};

/// How long a leftover may take to go away before it counts as leaked.
/// Threads that were joined leave `/proc/self/task` a moment after the
/// join returns, and children killed at a reset need their reaper to run;
/// this bound only decides when to stop looking and report, it is not a
/// claim about how fast anything is (the cell's alarm is longer).
const SETTLE: Duration = Duration::from_secs(5);

/// The process's threads, descriptors and children at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    threads: Vec<String>,
    fds: Vec<String>,
    children: Vec<u32>,
}

impl Snapshot {
    pub(crate) fn take() -> Snapshot {
        Snapshot {
            threads: thread_names(),
            fds: fds(),
            children: children(std::process::id()),
        }
    }
}

/// Names of this process's threads; where they cannot be listed, says
/// the leftover-thread check is skipped and returns none.
fn thread_names() -> Vec<String> {
    unirun_test_support::thread_names().unwrap_or_else(|| {
        unirun_test_support::skip(
            "seam matrix, leftover threads",
            "this platform cannot list threads",
        );
        Vec::new()
    })
}

/// This process's open descriptors, each as `fd -> target`. The directory
/// handle that reads them is one of them, in every snapshot alike.
fn fds() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let target = std::fs::read_link(entry.path()).ok()?;
        Some(format!(
            "{} -> {}",
            entry.file_name().to_string_lossy(),
            target.display()
        ))
    })
    .collect()
}

/// The children of process `pid` (every thread's, zombies included).
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What is left over compared with `base`, or `None` once nothing is:
/// more threads, any thread named after unirun or a seam scope (`seam-`;
/// the test binary's own main thread is `seams-<hash>`), more
/// descriptors, any child process.
fn leftovers(base: &Snapshot) -> Option<String> {
    let now = Snapshot::take();
    let mut found = Vec::new();
    let ours: Vec<&String> = now
        .threads
        .iter()
        .filter(|name| name.starts_with("unirun") || name.starts_with("seam-"))
        .collect();
    if now.threads.len() > base.threads.len() || !ours.is_empty() {
        found.push(format!(
            "threads: {} before, now {:?}",
            base.threads.len(),
            now.threads
        ));
    }
    if now.fds.len() > base.fds.len() {
        let extra: Vec<&String> = now.fds.iter().filter(|fd| !base.fds.contains(fd)).collect();
        found.push(format!(
            "fds: {} before {:?}, {} now; new {extra:?}",
            base.fds.len(),
            base.fds,
            now.fds.len()
        ));
    }
    if !now.children.is_empty() {
        found.push(format!("child processes left: {:?}", now.children));
    }
    // SAFETY: waitpid with WNOHANG and a null status pointer only asks the
    // kernel; it reaps at most a zombie child, which nothing else here owns
    // once the scopes are gone.
    let reaped = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if reaped != -1 || errno != Some(libc::ECHILD) {
        found.push(format!(
            "waitpid(-1, WNOHANG) = {reaped} (expected ECHILD: no children at all)"
        ));
    }
    (!found.is_empty()).then(|| found.join("; "))
}

/// Waits (spinning, bounded by [`SETTLE`]) for the process to be back at
/// `base`; returns what is still left over after that.
pub(crate) fn leaks_since(base: &Snapshot) -> Option<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = leftovers(base)?;
        if Instant::now() >= deadline {
            return Some(left);
        }
        std::thread::yield_now();
    }
}

/// Kills, with `SIGKILL`, every descendant process that has no children
/// of its own: the idle pool workers (a fork server, which has children,
/// survives). What the OOM killer or an operator's `kill -9` does.
pub(crate) fn kill_idle_workers() {
    let mut stack = children(std::process::id());
    while let Some(pid) = stack.pop() {
        let below = children(pid);
        if below.is_empty() {
            // SAFETY: plain kill(2). `pid` is a descendant listed a moment
            // ago and not reaped by this test; the pool reaps it.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        stack.extend(below);
    }
}
