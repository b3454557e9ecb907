//! Checks that only some platforms can make, and saying so when they skip.

/// Prints (to stderr, which `cargo test` shows for failing tests and with
/// `--nocapture`) that `test` did not check `what` on this platform, and
/// why. Call it on the path that returns early, so a run on a platform
/// without the feature says it skipped instead of passing in silence.
pub fn skip(test: &str, why: &str) {
    eprintln!(
        "skipped: {test}: {why} (on {} {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
}

/// Whether this platform lists threads by name (Linux:
/// `/proc/self/task`). Where it does not, says (through [`skip`], naming
/// the running test) that the test skips its thread checks. Guard every
/// check built on [`thread_names`] with it, so that none compares against
/// an empty list and passes without checking.
///
/// # Examples
///
/// ```
/// if unirun_test_support::lists_threads() {
///     let names = unirun_test_support::thread_names().unwrap();
///     assert!(!names.is_empty());
/// }
/// ```
pub fn lists_threads() -> bool {
    let lists = thread_names().is_some();
    if !lists {
        // libtest runs each test on a thread named after it.
        let current = std::thread::current();
        let test = current.name().unwrap_or("a test");
        skip(
            test,
            "its thread checks: this platform cannot list threads by name",
        );
    }
    lists
}

/// Names of this process's threads as the OS has them (Linux:
/// `/proc/self/task/*/comm`, at most 15 bytes each), or `None` where the
/// platform cannot list them. A check built on it must not read `None` as
/// "no such thread": guard it with [`lists_threads`].
pub fn thread_names() -> Option<Vec<String>> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        dir.filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect(),
    )
}

/// How many threads of this process have a name starting with `prefix`,
/// or `None` where the platform cannot list threads (see [`thread_names`]).
pub fn threads_named(prefix: &str) -> Option<usize> {
    let names = thread_names()?;
    Some(names.iter().filter(|name| name.starts_with(prefix)).count())
}
