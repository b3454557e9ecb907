//! [`ProcessOptions`]: the limits a forked child runs under.

use std::time::Duration;

/// Limits for one forked call: a wall-clock timeout, an address-space cap, a
/// CPU-time cap and a nice increment. By default only the timeout is set,
/// to [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT) (one hour).
///
/// - **timeout**: past it the child is killed with `SIGKILL`, reaped, and the
///   call fails with [`JoinError::is_timeout`](unirun_core::JoinError::is_timeout).
///   It is also the safety net for a child that deadlocks on a lock another
///   parent thread held at the fork, so a handle never waits forever: the
///   default is a generous hour; set a tighter one, or `timeout(None)` to
///   wait without limit.
/// - **memory limit** (bytes): how much *more* address space the child may
///   map than it inherited. A forked child starts with the parent's whole
///   address space (heap, thread stacks, a runtime's reservations, the
///   binary), so right after the fork the child reads its own virtual size
///   (Linux `/proc/self/statm`) and sets `RLIMIT_AS` to that plus the
///   limit: `memory_limit(512 << 20)` lets a closure allocate up to about
///   512 MiB whatever the parent's size. It counts address space, not
///   resident memory (a thread the closure starts maps its stack; a large
///   `Vec` counts whole even before it is touched). Allocations past it
///   fail; Rust's allocation-failure handler then aborts the child, which
///   surfaces as a crash with `SIGABRT`. For a pool worker the headroom is
///   above what the worker inherited when it started, and covers its whole
///   life. Where the size cannot be read (no `/proc`), the limit caps the
///   whole address space instead.
/// - **CPU-time limit** (`RLIMIT_CPU`, rounded up to whole seconds): the soft
///   limit is set there and the hard limit one second later, so the kernel
///   stops the child with `SIGXCPU` (a crash named `SIGXCPU`; no core file
///   is written), and `SIGKILL` follows only if the child ignores it. For a
///   pool worker the limit covers the worker's whole life, not one call.
/// - **nice**: added to the child's niceness (positive yields to others).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unirun_process::ProcessOptions;
///
/// assert_eq!(ProcessOptions::default().get_timeout(), Some(ProcessOptions::DEFAULT_TIMEOUT));
/// let options = ProcessOptions::default()
///     .timeout(Duration::from_secs(5))
///     .memory_limit(512 << 20)
///     .cpu_time_limit(Duration::from_secs(2))
///     .nice(5);
/// assert_eq!(options.get_timeout(), Some(Duration::from_secs(5)));
/// assert_eq!(options.get_memory_limit(), Some(512 << 20));
/// assert_eq!(options.timeout(None).get_timeout(), None); // no limit at all
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessOptions {
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    cpu_time_limit: Option<Duration>,
    nice: Option<i32>,
}

impl Default for ProcessOptions {
    /// Only the timeout set, to [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    fn default() -> Self {
        Self {
            timeout: Some(Self::DEFAULT_TIMEOUT),
            memory_limit: None,
            cpu_time_limit: None,
            nice: None,
        }
    }
}

impl ProcessOptions {
    /// The timeout of [`ProcessOptions::default`]: one hour. Long enough
    /// for any call meant to finish, short enough that a child deadlocked on
    /// a lock inherited through the fork does not hold its handle forever.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

    /// Kills the child and fails with "timed out" when it runs longer than
    /// `timeout`; `None` removes the limit (the default is
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let o = unirun_process::ProcessOptions::default().timeout(Duration::from_millis(50));
    /// assert_eq!(o.get_timeout(), Some(Duration::from_millis(50)));
    /// assert_eq!(o.timeout(None).get_timeout(), None);
    /// ```
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Lets the child map at most `bytes` more address space than it
    /// inherited through the fork (`RLIMIT_AS` set to its size at the start
    /// plus `bytes`); see the [type docs](Self) for what counts.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().memory_limit(1 << 30);
    /// assert_eq!(o.get_memory_limit(), Some(1 << 30));
    /// ```
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Caps the child's CPU time (`RLIMIT_CPU`, whole seconds, rounded up).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().cpu_time_limit(std::time::Duration::from_secs(1));
    /// assert!(o.get_cpu_time_limit().is_some());
    /// ```
    pub fn cpu_time_limit(mut self, limit: Duration) -> Self {
        self.cpu_time_limit = Some(limit);
        self
    }

    /// Adds `increment` to the child's nice value (clamped to -20..=19).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().nice(10);
    /// assert_eq!(o.get_nice(), Some(10));
    /// ```
    pub fn nice(mut self, increment: i32) -> Self {
        self.nice = Some(increment);
        self
    }

    /// The timeout, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_process::ProcessOptions;
    ///
    /// assert_eq!(ProcessOptions::default().get_timeout(), Some(ProcessOptions::DEFAULT_TIMEOUT));
    /// ```
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The memory limit in bytes (headroom above the inherited address
    /// space, see [`memory_limit`](Self::memory_limit)), if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessOptions::default().get_memory_limit(), None);
    /// ```
    pub fn get_memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// The CPU-time cap, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessOptions::default().get_cpu_time_limit(), None);
    /// ```
    pub fn get_cpu_time_limit(&self) -> Option<Duration> {
        self.cpu_time_limit
    }

    /// The nice increment, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessOptions::default().get_nice(), None);
    /// ```
    pub fn get_nice(&self) -> Option<i32> {
        self.nice
    }

    /// The CPU-time cap in whole seconds, rounded up, at least 1.
    pub(crate) fn cpu_seconds(&self) -> Option<u64> {
        self.cpu_time_limit.map(|d| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            secs.max(1)
        })
    }

    /// The `RLIMIT_AS` a child sets for the memory limit: the address
    /// space it inherited plus the limit (see [`memory_limit`](Self::memory_limit)).
    /// Called in the child right after the fork: async-signal-safe (raw
    /// system calls into a stack buffer, no allocation, no lock).
    pub(crate) fn address_space_cap(&self) -> Option<u64> {
        let limit = self.memory_limit?;
        Some(match inherited_address_space() {
            Some(have) => have.saturating_add(limit),
            None => limit,
        })
    }
}

/// The calling process's virtual size in bytes (the first field of
/// `/proc/self/statm`, in pages), or `None` where it cannot be read.
/// Async-signal-safe: `open`, `read`, `close` and `sysconf` on a stack
/// buffer.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn inherited_address_space() -> Option<u64> {
    let mut buf = [0u8; 128];
    // SAFETY: the path is a NUL-terminated literal; `open` takes no other
    // pointer.
    let fd = unsafe {
        libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: `buf[got..]` is live and writable for its length; `fd`
        // is open (closed only below).
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    let pages = parse_first_number(&buf[..got])?;
    // SAFETY: `sysconf` takes a plain integer.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|&p| p > 0)?;
    pages.checked_mul(page)
}

/// Without `/proc`, what a child inherits is not read: the memory limit is
/// then the whole address space.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn inherited_address_space() -> Option<u64> {
    None
}

/// The decimal number `text` starts with, if any.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn parse_first_number(text: &[u8]) -> Option<u64> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    text[..digits].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_number_of_statm_is_parsed_and_garbage_is_none() {
        assert_eq!(parse_first_number(b"12345 678 9\n"), Some(12345));
        assert_eq!(parse_first_number(b""), None);
        assert_eq!(parse_first_number(b" 12"), None);
        assert_eq!(parse_first_number(b"99999999999999999999999 1"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_memory_limit_is_headroom_above_the_current_address_space() {
        // Other test threads map and unmap memory meanwhile (ASan's shadow
        // too): take a reading that the size did not move across, read
        // again until one is (each try is a few syscalls; the mappings of
        // a test binary settle between allocations).
        let (have, cap) = (0..10_000)
            .find_map(|_| {
                let before = inherited_address_space().expect("/proc/self/statm is readable");
                let cap = ProcessOptions::default()
                    .memory_limit(1 << 20)
                    .address_space_cap()
                    .unwrap();
                let after = inherited_address_space().unwrap();
                (before == after).then_some((before, cap))
            })
            .expect("the address space held still for one reading");
        assert!(have > 0);
        assert!(cap >= have + (1 << 20) && cap > 1 << 20, "{cap} vs {have}");
        assert_eq!(ProcessOptions::default().address_space_cap(), None);
    }
}
