//! A cluster scope's connection (feature `cluster-backend`, unix): what the
//! scope, its builder and its metrics use, from `crate::cluster`.
//! `no_cluster.rs` has the same interface without the cluster.

pub(crate) use crate::cluster::{call, connect, ClusterOptions};
pub(crate) use unirun_cluster::Client;

/// The scope's calls, redeliveries, crashes, timeouts and transport
/// failures, in the order `Metrics` reads them.
pub(crate) fn counts(client: &Client) -> [u64; 5] {
    let c = client.counts();
    [c.calls, c.redeliveries, c.crashes, c.timeouts, c.transport]
}
