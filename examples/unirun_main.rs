//! A tokio TCP service whose `#[tokio::main]` became `#[unirun::main]`:
//! its tasks run on unirun's workers, and `tokio::net` works in `main` and
//! in every task. `docs/migration.md` ("Replacing `#[tokio::main]`") shows
//! this file; CI runs it.
//!
//! ```text
//! cargo run --example unirun_main --features tokio-backend,macros
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// Was: #[tokio::main]
#[unirun::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    // Was: tokio::spawn(..). `unirun::spawn` (or `compat::tokio::spawn`)
    // runs the task on unirun's workers.
    let server = unirun::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = [0; 5];
        socket.read_exact(&mut buf).await?;
        socket.write_all(&buf).await?;
        std::io::Result::Ok(std::thread::current().name().map(String::from))
    });

    let mut client = TcpStream::connect(addr).await?;
    client.write_all(b"hello").await?;
    let mut echoed = [0; 5];
    client.read_exact(&mut echoed).await?;
    assert_eq!(&echoed, b"hello");

    let thread = server.await.expect("the server task ran")?;
    println!(
        "echoed {:?} on thread {}",
        std::str::from_utf8(&echoed).unwrap(),
        thread.unwrap_or_default()
    );
    Ok(())
}
