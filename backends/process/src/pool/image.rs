//! Whether a call's code is in the worker it is sent to.
//!
//! A request names its function (and the trampoline that decodes its
//! argument) by address, valid in a worker because the worker is a fork of
//! the same image. Code mapped after the worker was forked (a library
//! loaded with `dlopen` after `init()`, or after a directly forked worker
//! started) is not in it, and the worker would jump into nothing. Before a
//! request is written, both addresses are checked:
//!
//! - **The main executable's code** (the common case) is in every worker:
//!   its ranges are read once per process from `/proc/self/maps`, and an
//!   address inside them costs two comparisons per call.
//! - **Any other address** (a shared library's code) is looked up in the
//!   worker's own `/proc/<pid>/maps`, once per worker and function (the
//!   answer is kept); one outside every executable mapping of the worker
//!   fails the call with a typed error and leaves the worker serving.
//!
//! Where `/proc` cannot be read (other unixes), nothing is checked: the
//! docs of `init` and `ProcessPool` say the functions must be in the image
//! when the workers start.

use std::io;
use std::sync::{Mutex, OnceLock, PoisonError};

use unirun_platform::process::Pid;

use crate::wire::HEADER;

/// Executable address ranges, `[start, end)`.
type Ranges = Vec<(usize, usize)>;

/// The error `check` gives for code that is not in the worker (found again
/// by [`not_in_image`]).
#[derive(Debug)]
struct NotInImage(String);

impl std::fmt::Display for NotInImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotInImage {}

/// What this pool found in its workers beyond the main executable: (worker,
/// trampoline, function) triples whose code is there.
#[derive(Default)]
pub(super) struct Images {
    found: Mutex<Vec<(Pid, usize, usize)>>,
}

/// Kept answers, at most: past it they are forgotten (and looked up again).
const MAX_FOUND: usize = 256;

impl Images {
    /// Whether the code `request` names is in worker `pid`: `Ok`, or
    /// (see [`not_in_image`]) an error saying it is not; `Ok` when it
    /// cannot be told.
    pub(super) fn check(&self, pid: Pid, request: &[u8]) -> io::Result<()> {
        let Some((trampoline, function)) = addresses(request) else {
            return Ok(());
        };
        let main = main_text();
        if contains(main, trampoline) && contains(main, function) {
            return Ok(());
        }
        // Cold: code outside the main executable.
        let key = (pid, trampoline, function);
        let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        if found.contains(&key) {
            return Ok(());
        }
        let Some(ranges) = executable_ranges(&format!("/proc/{pid}/maps"), None) else {
            return Ok(());
        };
        let missing = [trampoline, function]
            .into_iter()
            .find(|&at| !contains(&ranges, at));
        match missing {
            None => {
                if found.len() >= MAX_FOUND {
                    found.clear();
                }
                found.push(key);
                Ok(())
            }
            Some(at) => Err(io::Error::other(NotInImage(format!(
                "the function to call (code at {at:#x}) is not in the worker process's \
                 image: its code was loaded after the worker started (a library loaded \
                 after `unirun::process::init()` or after the pool's workers started); \
                 call only functions that were in the program when the workers started"
            )))),
        }
    }
}

/// The message of an error from [`Images::check`] saying the code is not
/// in the worker; `None` for other errors.
pub(super) fn not_in_image(err: &io::Error) -> Option<String> {
    err.get_ref()?
        .downcast_ref::<NotInImage>()
        .map(|e| e.0.clone())
}

/// The trampoline's and the function's addresses at the start of a
/// request's body (see `worker::request`).
fn addresses(request: &[u8]) -> Option<(usize, usize)> {
    let word = |at: usize| -> Option<usize> {
        let bytes: [u8; 8] = request.get(at..at + 8)?.try_into().ok()?;
        usize::try_from(u64::from_le_bytes(bytes)).ok()
    };
    Some((word(HEADER)?, word(HEADER + 8)?))
}

fn contains(ranges: &[(usize, usize)], at: usize) -> bool {
    ranges
        .iter()
        .any(|&(start, end)| (start..end).contains(&at))
}

/// The executable ranges of this process's main program, read once.
fn main_text() -> &'static [(usize, usize)] {
    static MAIN: OnceLock<Ranges> = OnceLock::new();
    MAIN.get_or_init(|| {
        let exe = std::fs::read_link("/proc/self/exe").ok();
        match exe.as_ref().and_then(|exe| exe.to_str()) {
            Some(exe) => executable_ranges("/proc/self/maps", Some(exe)).unwrap_or_default(),
            None => Vec::new(),
        }
    })
}

/// The executable ranges listed in the `maps` file at `path` (of the file
/// `only`, if given); `None` if it cannot be read.
fn executable_ranges(path: &str, only: Option<&str>) -> Option<Ranges> {
    let maps = std::fs::read_to_string(path).ok()?;
    Some(
        maps.lines()
            .filter_map(|line| {
                // start-end perms offset dev inode [padding path]
                let mut fields = line.splitn(6, ' ');
                let (range, perms) = (fields.next()?, fields.next()?);
                if perms.as_bytes().get(2) != Some(&b'x') {
                    return None;
                }
                if let Some(only) = only {
                    if fields.nth(3).map(str::trim_start) != Some(only) {
                        return None;
                    }
                }
                let (start, end) = range.split_once('-')?;
                Some((
                    usize::from_str_radix(start, 16).ok()?,
                    usize::from_str_radix(end, 16).ok()?,
                ))
            })
            .collect(),
    )
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_main_programs_code_is_found_without_reading_a_workers_maps() {
        let here = addresses as *const () as usize;
        assert!(contains(main_text(), here), "{:?}", main_text());
        let mut request = vec![0u8; HEADER + 16];
        request[HEADER..HEADER + 8].copy_from_slice(&(here as u64).to_le_bytes());
        request[HEADER + 8..]
            .copy_from_slice(&(contains as *const () as usize as u64).to_le_bytes());
        // No such worker: only the main-program check can answer `Ok`.
        let images = Images::default();
        assert!(images.check(i32::MAX, &request).is_ok());
        assert!(images.found.lock().unwrap().is_empty());
    }
}
