//! A `nats-server` with JetStream on a free loopback port and a temporary
//! store, and worker processes: this test binary re-executed as a worker.
//!
//! Both die with the test process even when it ends without running their
//! destructors (`process::exit`, a kill): on Linux each is started with
//! `PR_SET_PDEATHSIG` = `SIGKILL` (see [`die_with_this_thread`]). The
//! signal follows the *thread* that started the child, so each test
//! starts and drops its server and workers on its own thread, which
//! outlives them.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary: `UNIRUN_NATS_SERVER`, or `nats-server` on `PATH`.
pub(crate) fn find_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("UNIRUN_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// A running server; killed and its store removed on drop.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) url: String,
    port: u16,
    store: PathBuf,
}

impl Server {
    pub(crate) fn start(binary: &PathBuf) -> Server {
        let port = free_port();
        let store =
            std::env::temp_dir().join(format!("unirun-cluster-test-{}-{port}", std::process::id()));
        let mut server = Server {
            child: None,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
        };
        server.spawn(binary);
        server
    }

    /// Starts the server process (again, after [`kill`](Self::kill): same
    /// port, same store).
    pub(crate) fn spawn(&mut self, binary: &PathBuf) {
        let mut command = Command::new(binary);
        die_with_this_thread(&mut command);
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        self.child = Some(child);
        // Ready once it accepts connections; it exits on a bad flag, which
        // ends the wait too.
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "nats-server exited: {exited:?}");
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id (while it runs).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its JetStream store directory.
    pub(crate) fn store(&self) -> &std::path::Path {
        &self.store
    }

    /// Kills the server at once (no lame-duck goodbye).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Makes the child `command` starts die (`SIGKILL`) when the thread that
/// starts it ends, and so when this process ends however it ends (Linux's
/// `PR_SET_PDEATHSIG`; elsewhere nothing: the destructors still kill it on
/// an ordinary end). A child whose parent died before the `prctl` took
/// effect (its parent pid changed) does not start at all.
pub(crate) fn die_with_this_thread(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: `prctl`, `getppid` and building an `io::Error` from a
        // number are async-signal-safe; nothing here allocates or locks.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// This test binary started as a cluster worker, in a process group of
/// its own (with its fork server and pool processes); the group is
/// killed on drop.
pub(crate) struct Worker {
    child: Child,
}

impl Worker {
    pub(crate) fn start(url: &str) -> Worker {
        Worker::start_with(url, |_| {})
    }

    /// `setup` runs in the child before it executes the binary.
    pub(crate) fn start_with(url: &str, setup: fn(&mut Command)) -> Worker {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .env(unirun::cluster::WORKER_ENV, "1")
            .env(unirun::cluster::URL_ENV, url)
            .env("UNIRUN_MAX_WORKERS", "2")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .process_group(0);
        die_with_this_thread(&mut command);
        setup(&mut command);
        Worker {
            child: command.spawn().expect("start a worker"),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the worker and everything it started (its host is lost).
    pub(crate) fn kill(&mut self) {
        // SAFETY: plain system calls on a process group this test made.
        unsafe {
            libc::kill(-self.pid(), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// Whether the worker still runs.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` until it holds, failing after a minute: for events
/// another process causes with no notification to wait on (a file
/// appearing).
pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
