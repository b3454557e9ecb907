//! What callers and workers share about the server: the tokio runtime
//! that drives async-nats, connecting, and the stream and consumer the
//! jobs go through.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::{ClusterOptions, Storage};

/// A runtime for async-nats: one thread named `name`.
pub(crate) fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Checks that `url` looks like a NATS server address, so a typo is an
/// error naming the setting rather than a connection timeout.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .unwrap_or(url);
    let valid = !rest.is_empty()
        && !rest.contains(char::is_whitespace)
        && rest
            .rsplit_once(':')
            .is_none_or(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(format!("{url:?} is not a NATS server address"))
    }
}

/// The connect options both sides use: bounded connect, a name the
/// server's monitoring shows, no limit on reconnect attempts.
pub(crate) fn connect_options(role: &str, options: &ClusterOptions) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(format!("unirun-{role}-{}", std::process::id()))
        .connection_timeout(options.lost_after.max(Duration::from_millis(100)))
        .max_reconnects(None)
}

/// The work-queue stream, made as `options` say if it does not exist:
/// each job is taken by one worker and removed when acknowledged; a call
/// id seen within the duplicate window is dropped by the server (a
/// caller's retried publish runs once). One that exists with other
/// storage is an error naming both (callers own the stream's settings).
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    options: &ClusterOptions,
) -> Result<stream::Stream, String> {
    let storage = match options.storage {
        Storage::File => stream::StorageType::File,
        Storage::Memory => stream::StorageType::Memory,
    };
    let stream = js
        .get_or_create_stream(stream::Config {
            name: options.stream.clone(),
            subjects: vec![options.subject()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|err| format!("stream {}: {err}", options.stream))?;
    let have = stream.cached_info().config.storage;
    if have == storage {
        return Ok(stream);
    }
    let have = match have {
        stream::StorageType::File => Storage::File,
        stream::StorageType::Memory => Storage::Memory,
    };
    Err(format!(
        "stream {} has {have} storage (made by another scope, or an earlier run), and this \
         scope asks for {} storage: give every scope of one stream the same storage, use \
         another stream (ClusterOptions::stream), or delete the stream (`nats stream rm {}`)",
        options.stream, options.storage, options.stream
    ))
}

/// The stream as it is, for workers (callers make it and own its
/// settings).
pub(crate) async fn find_stream(
    js: &jetstream::Context,
    options: &ClusterOptions,
) -> Result<stream::Stream, String> {
    js.get_stream(&options.stream)
        .await
        .map_err(|err| format!("stream {}: {err}", options.stream))
}

/// Makes sure the workers' consumer exists, configured as `options` say:
/// creates it, or finds it with the same `ack_wait` and `max_deliver`.
/// One made by another scope (or an earlier run) with other values is an
/// error naming both: updating it would change the redelivery of that
/// scope's calls under it.
pub(crate) async fn ensure_consumer(
    stream: &jetstream::stream::Stream,
    options: &ClusterOptions,
) -> Result<(), String> {
    let name = options.consumer();
    let existing = stream.get_consumer::<consumer::pull::Config>(&name).await;
    let have = match existing {
        Ok(consumer) => consumer.cached_info().config.clone(),
        Err(_) => match stream
            .create_consumer_strict(consumer_config(options))
            .await
        {
            Ok(_) => return Ok(()),
            // Made meanwhile by another caller: compare with it.
            Err(err) => match stream.consumer_info(&name).await {
                Ok(info) => info.config.clone(),
                Err(_) => return Err(format!("consumer {name}: {err}")),
            },
        },
    };
    if have.ack_wait == options.ack_wait && have.max_deliver == options.max_deliver {
        return Ok(());
    }
    Err(format!(
        "consumer {name} of stream {} has ack_wait={:?} and max_deliver={} (set by another \
         scope, or an earlier run), and this scope asks for ack_wait={:?} and max_deliver={}: \
         give every scope of one stream the same values, use another stream \
         (ClusterOptions::stream), or delete the consumer (`nats consumer rm {} {name}`)",
        options.stream,
        have.ack_wait,
        have.max_deliver,
        options.ack_wait,
        options.max_deliver,
        options.stream
    ))
}

/// The durable pull consumer workers share, configured as `options` say.
pub(crate) fn consumer_config(options: &ClusterOptions) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(options.consumer()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        max_deliver: options.max_deliver,
        // Pull requests of many workers' many pullers wait at once.
        max_waiting: 4096,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_are_checked() {
        for good in [
            "nats://127.0.0.1:4222",
            "tls://nats.example:4443",
            "localhost",
            "h:1",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "nats://",
            "nats://a host:1",
            "nats://h:port",
            "nats://:4222",
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
