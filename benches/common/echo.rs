//! The floor of the process-call benches (`process_call` and the
//! executors bench's process scenarios): a pre-forked child that echoes
//! 8-byte messages over a pair of pipes, the least a call to another
//! process can cost. Included by both with `#[path]`.

use std::os::fd::{AsFd, OwnedFd};

use unirun_platform::process::{self as sys, Forked};

/// A pre-forked child that echoes 8-byte messages over a pair of pipes.
pub(crate) struct Echo {
    pid: sys::Pid,
    to: OwnedFd,
    from: OwnedFd,
}

impl Echo {
    /// Forks the child (from the calling thread).
    pub(crate) fn start() -> Self {
        let (req_read, req_write) = sys::pipe().expect("pipe");
        let (rep_read, rep_write) = sys::pipe().expect("pipe");
        // SAFETY: the child calls only `read`, `write` and `_exit`
        // (async-signal-safe) on its own pipes.
        match unsafe { sys::fork() }.expect("fork") {
            Forked::Child => {
                let mut buf = [0u8; 8];
                loop {
                    if !read_exact(&req_read, &mut buf) {
                        sys::exit_now(0);
                    }
                    if sys::write_all(rep_write.as_fd(), &buf).is_err() {
                        sys::exit_now(1);
                    }
                }
            }
            Forked::Parent(pid) => Echo {
                pid,
                to: req_write,
                from: rep_read,
            },
        }
    }

    /// One round trip: `value` there and back.
    pub(crate) fn call(&self, value: u64) -> u64 {
        sys::write_all(self.to.as_fd(), &value.to_le_bytes()).expect("write");
        let mut buf = [0u8; 8];
        assert!(read_exact(&self.from, &mut buf), "the echo child died");
        u64::from_le_bytes(buf)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        let _ = sys::wait_pid(self.pid, true);
    }
}

/// Fills `buf` from `fd`; `false` if the other end closed first.
pub(crate) fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match sys::read_until(fd.as_fd(), &mut buf[got..], None) {
            Ok(Some(n)) if n > 0 => got += n,
            _ => return false,
        }
    }
    true
}
