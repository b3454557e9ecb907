//! A TCP proxy whose connections can be cut, refusing new ones for a
//! while: the caller's network link breaks while the server stays up.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Proxy {
    /// The loopback port it listens on.
    pub(crate) port: u16,
    /// Both ends of every connection carried so far.
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// New connections before this instant are refused.
    refuse_until: Arc<Mutex<Instant>>,
}

impl Proxy {
    /// Carries connections to `target` (`host:port`) from a thread of its
    /// own (left running: the test process is short-lived).
    pub(crate) fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let refuse_until = Arc::new(Mutex::new(Instant::now()));
        let (all, until) = (conns.clone(), refuse_until.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if Instant::now() < *until.lock().unwrap() {
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = carry(client, upstream, &all);
            }
        });
        Proxy {
            port,
            conns,
            refuse_until,
        }
    }

    /// Cuts every connection and refuses new ones for `pause`.
    pub(crate) fn cut(&self, pause: Duration) {
        *self.refuse_until.lock().unwrap() = Instant::now() + pause;
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// Copies both ways between `client` and `upstream` on two threads.
fn carry(client: TcpStream, upstream: TcpStream, all: &Mutex<Vec<TcpStream>>) -> io::Result<()> {
    all.lock()
        .unwrap()
        .extend([client.try_clone()?, upstream.try_clone()?]);
    for (mut from, mut to) in [
        (client.try_clone()?, upstream.try_clone()?),
        (upstream, client),
    ] {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    Ok(())
}
