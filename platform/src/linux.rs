//! Linux implementation: `sysconf`, `sched_getaffinity`,
//! `pthread_setname_np` and `/proc/self/task`.

use std::io;
use std::mem;
use std::num::NonZeroUsize;

/// Kernel limit for thread names, excluding the terminating NUL.
const MAX_THREAD_NAME_BYTES: usize = 15;
/// Largest affinity mask tried, in bytes (8 million CPUs); beyond this the
/// affinity is reported as unknown.
const MAX_AFFINITY_MASK_BYTES: usize = 1 << 20;

/// Number of online CPUs, falling back to the standard library's estimate.
pub(crate) fn online_cpus() -> usize {
    // SAFETY: `sysconf` takes no pointers and has no preconditions; an
    // unsupported name just returns -1.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online)
        .ok()
        .filter(|&n| n >= 1)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// Number of CPUs in the affinity mask of the calling thread.
pub(crate) fn affinity_cpus() -> Option<usize> {
    // SAFETY: `cpu_set_t` is a plain array of integers, so all-zero bytes are
    // a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a live, writable `cpu_set_t` and the size passed is
    // exactly its size, so the kernel writes only inside it. Pid 0 means the
    // calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc == 0 {
        // SAFETY: `set` is an initialized `cpu_set_t`; `CPU_COUNT` only reads
        // its bits.
        let count = unsafe { libc::CPU_COUNT(&set) };
        return usize::try_from(count).ok().filter(|&n| n >= 1);
    }
    if io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return None;
    }
    // EINVAL: the kernel supports more CPUs than `cpu_set_t` can hold.
    affinity_cpus_dynamic(mem::size_of::<libc::cpu_set_t>() * 2)
}

/// Retries `sched_getaffinity` with heap masks, doubling the size on
/// `EINVAL`, starting at `bytes`.
fn affinity_cpus_dynamic(mut bytes: usize) -> Option<usize> {
    const WORD: usize = mem::size_of::<libc::c_ulong>();
    while bytes <= MAX_AFFINITY_MASK_BYTES {
        let mut mask: Vec<libc::c_ulong> = vec![0; bytes.div_ceil(WORD)];
        let len = mask.len() * WORD;
        // The kernel treats the buffer as a bit array of `len` bytes; `c_ulong`
        // alignment matches the words of `cpu_set_t`.
        // SAFETY: `mask` is a live, writable, zeroed buffer of exactly `len`
        // bytes, so the kernel writes only inside it.
        let rc = unsafe { libc::sched_getaffinity(0, len, mask.as_mut_ptr().cast()) };
        if rc == 0 {
            let count: u32 = mask.iter().map(|w| w.count_ones()).sum();
            return usize::try_from(count).ok().filter(|&n| n >= 1);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return None;
        }
        bytes = bytes.checked_mul(2)?;
    }
    None
}

/// Renames the calling thread at the OS level, ignoring errors.
pub(crate) fn set_current_thread_name(name: &str) {
    let name = truncate_thread_name(name);
    let mut buf = [0u8; MAX_THREAD_NAME_BYTES + 1];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `buf` is NUL-terminated (at most 15 bytes copied into a zeroed
    // 16-byte array) and outlives the call, and `pthread_self()` is always a
    // valid handle for the calling thread.
    let _ = unsafe { libc::pthread_setname_np(libc::pthread_self(), buf.as_ptr().cast()) };
}

/// Cuts `name` at the first NUL and truncates it to the kernel limit on a
/// character boundary.
fn truncate_thread_name(name: &str) -> &str {
    let name = name.find('\0').map_or(name, |nul| &name[..nul]);
    let mut end = name.len().min(MAX_THREAD_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Number of threads of this process, from `/proc/self/task`.
pub(crate) fn thread_count() -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let count = tasks.filter(Result::is_ok).count();
    (count >= 1).then_some(count)
}

/// Names of this process's threads, from `/proc/self/task/*/comm`.
pub(crate) fn thread_names() -> Option<Vec<String>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn online_is_positive() {
        assert!(online_cpus() >= 1);
    }

    #[test]
    fn affinity_is_positive_and_bounded() {
        let n = affinity_cpus().expect("sched_getaffinity works on Linux");
        assert!(n >= 1);
        // The mask may name CPUs that are offline, but never more than the
        // kernel's possible CPUs; the budget takes the minimum anyway.
        assert!(n <= 1 << 23);
    }

    #[test]
    fn dynamic_affinity_matches_fixed() {
        let fixed = affinity_cpus();
        let dynamic = affinity_cpus_dynamic(mem::size_of::<libc::cpu_set_t>() * 2);
        assert_eq!(fixed, dynamic);
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate_thread_name(""), "");
        assert_eq!(truncate_thread_name("worker-1"), "worker-1");
        assert_eq!(truncate_thread_name("exactly-15-byte"), "exactly-15-byte");
        assert_eq!(truncate_thread_name("sixteen-bytes-xx"), "sixteen-bytes-x");
        assert_eq!(truncate_thread_name("nul\0rest"), "nul");
        // 'é' is two bytes: seven of them fill 14 bytes, the eighth would
        // cross the limit.
        assert_eq!(truncate_thread_name("éééééééééé"), "ééééééé");
        assert_eq!(truncate_thread_name("abcdefghijklmn€"), "abcdefghijklmn");
    }

    #[test]
    fn rename_is_visible_to_the_kernel() {
        let comm = thread::spawn(|| {
            set_current_thread_name("unirun-renamed-thread");
            std::fs::read_to_string("/proc/thread-self/comm")
        })
        .join()
        .expect("join test thread");
        // /proc/thread-self needs Linux 3.17; skip on failure.
        if let Ok(comm) = comm {
            assert_eq!(comm.trim_end(), "unirun-renamed-");
        }
    }

    #[test]
    fn thread_count_sees_a_live_thread() {
        let (started_tx, started_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            let _ = started_tx.send(());
            let _ = stop_rx.recv();
        });
        started_rx.recv().expect("helper thread started");
        let count = thread_count().expect("/proc/self/task readable");
        // This test thread plus the helper are alive.
        assert!(count >= 2, "count = {count}");
        drop(stop_tx);
        handle.join().expect("join helper thread");
        assert!(thread_count().is_some_and(|n| n >= 1));
    }
}
