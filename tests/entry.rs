//! Entry points: `unirun::block_on` with tokio's and smol's I/O, and the
//! `#[unirun::main]` / `#[unirun::test]` attributes (feature `macros`).
//! Each I/O test moves a few bytes over a real loopback socket.

mod common;

use unirun::Handle;

#[unirun::test]
async fn test_attribute_runs_the_body_in_block_on() {
    // Inside `unirun::block_on`, the current executor is the shared default.
    assert_eq!(Handle::current().name(), "unirun");
    let name = unirun::spawn(async { std::thread::current().name().map(String::from) })
        .await
        .unwrap()
        .unwrap();
    assert!(name.starts_with("unirun-"), "{name}");
}

#[unirun::test]
async fn test_attribute_keeps_the_return_type() -> Result<(), std::num::ParseIntError> {
    let n: u8 = async { "7".parse() }.await?;
    assert_eq!(n, 7);
    Ok(())
}

#[unirun::test]
#[should_panic(expected = "kept")]
async fn test_attribute_keeps_other_attributes() {
    panic!("kept");
}

#[test]
fn block_on_uses_smol_sockets() {
    common::watchdog_this_test(|| {
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        let echoed = unirun::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = unirun::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0; 4];
                socket.read_exact(&mut buf).await.unwrap();
                socket.write_all(&buf).await.unwrap();
            });
            let mut client = async_net::TcpStream::connect(addr).await.unwrap();
            client.write_all(b"smol").await.unwrap();
            let mut buf = [0; 4];
            client.read_exact(&mut buf).await.unwrap();
            server.await.unwrap();
            buf
        });
        assert_eq!(&echoed, b"smol");
    });
}

#[cfg(feature = "tokio-backend")]
mod tokio_io {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn block_on_binds_a_tokio_listener() {
        super::common::watchdog_this_test(|| {
            let (echoed, server_thread) = unirun::block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = unirun::spawn(async move {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut buf = [0; 5];
                    socket.read_exact(&mut buf).await.unwrap();
                    socket.write_all(&buf).await.unwrap();
                    std::thread::current().name().map(String::from)
                });
                let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
                client.write_all(b"tokio").await.unwrap();
                let mut buf = [0; 5];
                client.read_exact(&mut buf).await.unwrap();
                // tokio's timers too.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                (buf, server.await.unwrap())
            });
            assert_eq!(&echoed, b"tokio");
            assert!(server_thread.unwrap().starts_with("unirun-"));
        });
    }

    #[unirun::test]
    async fn compat_tokio_spawn_in_a_unirun_test_runs_on_unirun_workers() {
        let name =
            unirun::compat::tokio::spawn(async { std::thread::current().name().map(String::from) })
                .await
                .unwrap()
                .unwrap();
        assert!(name.starts_with("unirun-"), "{name}");
    }

    #[test]
    fn block_on_inside_a_tokio_runtime_keeps_its_context() {
        super::common::watchdog_this_test(|| {
            // Told apart by where its tasks run: unirun's own reactor would
            // run them on `unirun-io` (`Handle::id` needs tokio 1.43+).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("entry-rt")
                .enable_all()
                .build()
                .unwrap();
            let _inside = rt.enter();
            let seen = unirun::block_on(async {
                tokio::runtime::Handle::current()
                    .spawn(async { std::thread::current().name().map(String::from) })
                    .await
                    .unwrap()
            });
            assert_eq!(seen.as_deref(), Some("entry-rt"));
        });
    }
}
