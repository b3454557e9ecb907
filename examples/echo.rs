//! A TCP echo server on unirun's own thread pool, written with `tokio::net`,
//! and a built-in client that opens 100 connections at once, sends each its
//! own data, checks every byte that comes back, and prints what it measured.
//!
//! No tokio runtime is started by this program: unirun's workers run inside
//! the context of its small I/O runtime (`unirun-io`, see `unirun::io`), so
//! tokio's sockets just work in `Run::spawn`. Every client is guarded by
//! `unirun::time::timeout`: a stalled server fails the run instead of
//! hanging it.
//!
//! ```text
//! cargo run --release --example echo --features tokio-backend
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use unirun::{Flavor, Run};

/// Connections the client opens, all at once.
const CONNECTIONS: usize = 100;
/// Bytes each connection sends (and gets back).
const BYTES: usize = 64 * 1024;
/// How long one connection may take before the run fails.
const LIMIT: Duration = Duration::from_secs(30);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run = Run::builder()
        .flavor(Flavor::Threads)
        .name("echo")
        .build()?;
    println!("{}", run.trace());

    let listener = run.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    println!("echo server on {addr}, {CONNECTIONS} connections of {BYTES} bytes each");

    // The server: one task accepts, one task per connection echoes.
    let handle = run.handle();
    let server = run.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await?;
            handle.spawn(echo(stream)).detach();
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });

    // The client: every connection at once, each one timed and checked.
    let began = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| run.spawn(unirun::time::timeout(LIMIT, client(addr, i))))
        .collect();
    let mut latencies = Vec::with_capacity(CONNECTIONS);
    for (i, client) in clients.into_iter().enumerate() {
        match run.block_on(client)? {
            Ok(Ok(took)) => latencies.push(took),
            Ok(Err(err)) => return Err(format!("connection {i}: {err}").into()),
            Err(elapsed) => {
                return Err(
                    format!("connection {i}: server stalled ({elapsed} after {LIMIT:?})").into(),
                )
            }
        }
    }
    let total = began.elapsed();
    server.abort();
    run.shutdown_now();

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let bytes = 2 * CONNECTIONS * BYTES;
    println!(
        "{CONNECTIONS} connections echoed {} MiB correctly in {total:.2?} ({:.0} MiB/s through the server)",
        bytes >> 20,
        bytes as f64 / (1 << 20) as f64 / total.as_secs_f64(),
    );
    println!(
        "per connection: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        at(0.50),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// Writes back everything read, until the peer closes its side.
async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    let (mut read, mut write) = stream.split();
    tokio::io::copy(&mut read, &mut write).await?;
    write.shutdown().await
}

/// Sends connection `i`'s own bytes while reading the echo, checks it,
/// and returns how long the round trip took.
async fn client(addr: SocketAddr, i: usize) -> std::io::Result<Duration> {
    let began = Instant::now();
    let data: Vec<u8> = (0..BYTES).map(|j| (i * 31 + j) as u8).collect();
    let mut stream = TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.split();
    let send = async {
        write.write_all(&data).await?;
        write.shutdown().await
    };
    let mut back = Vec::with_capacity(BYTES);
    let receive = read.read_to_end(&mut back);
    let (sent, received) = futures_lite::future::zip(send, receive).await;
    sent?;
    received?;
    if back != data {
        let at = back.iter().zip(&data).position(|(a, b)| a != b);
        return Err(std::io::Error::other(format!(
            "echo differs: got {} bytes of {BYTES}, first difference at {at:?}",
            back.len()
        )));
    }
    Ok(began.elapsed())
}
