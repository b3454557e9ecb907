//! The cluster's interface when it is not compiled in (feature
//! `cluster-backend` off, or not unix): the scheduler never plans a cluster
//! then, there are no connections (the types have no values), and
//! connecting names the feature.

use crate::error::Error;
use crate::flavor::Flavor;
use crate::trace::DecisionTrace;

/// A connection to a cluster: there are none.
pub(crate) enum Client {}

/// Where a cluster scope's calls go: nowhere to set.
#[derive(Clone)]
pub(crate) enum ClusterOptions {}

/// Connecting fails: the cluster is not compiled in.
pub(crate) fn connect(
    _options: Option<ClusterOptions>,
    _trace: DecisionTrace,
) -> Result<(Client, DecisionTrace), Error> {
    Err(Error::BackendUnavailable {
        flavor: Flavor::Cluster,
        feature: "cluster-backend",
    })
}

/// A cluster's counts: there is no connection to count.
pub(crate) fn counts(client: &Client) -> [u64; 5] {
    match *client {}
}

/// A call on a cluster: there is no connection to call through. Called
/// from `Handle::call`, which needs the process backend.
#[cfg_attr(not(all(unix, feature = "process-backend")), allow(dead_code))]
pub(crate) fn call<A, R>(
    _handle: &crate::handle::Handle,
    client: &Client,
    _f: fn(A) -> R,
    _arg: A,
) -> unirun_core::JoinHandle<R> {
    match *client {}
}
