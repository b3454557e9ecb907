//! Cluster backend of [unirun](https://docs.rs/unirun): `Run::call` and
//! `Run::map_call` carried to worker processes on other machines by NATS
//! JetStream. Use it through the facade's `cluster-backend` feature
//! (`unirun::cluster`), not directly.
//!
//! # How a call travels
//!
//! A caller publishes each call on the subject of a work-queue stream
//! ([`ClusterOptions::stream`]) with a call id as its JetStream message id
//! (the server drops a duplicate publish), the function's registered name
//! and [signature](registry::signature), a deadline, and the subject of the
//! caller's reply inbox. Workers (the same binary, started as workers)
//! pull jobs from one durable consumer at their own pace, run each in a
//! local process pool, publish the reply to the inbox and
//! acknowledge the job; a job whose function panicked, crashed its pool
//! process or could not be decoded is terminated, not redelivered. Calls
//! of short functions (under a millisecond each so far) travel in bulk:
//! `map` packs several into one message ([`Client::call_pack_fn`]), and
//! jobs that reach a worker together go to a pool process as one batch,
//! one pipe round trip for all; a panic stays its call's, and a batch
//! whose pool process crashed runs again one job at a time. A job
//! whose worker host is lost is redelivered after `ack_wait`, at most
//! `max_deliver` times; then the caller's handle fails with a transport
//! error naming `max_deliver`.
//!
//! Delivery is at least once: a function may run more than once for one
//! call (its worker died after running it, before acknowledging; or
//! another job of its batch crashed the pool process), so remote
//! functions must be idempotent.

mod client;
mod engine;
mod options;
pub mod registry;
mod wire;
mod worker;

pub use client::{Client, ClusterCounts};
pub use engine::check_url;
pub use options::{ClusterOptions, Storage};
pub use registry::{execute, execute_all, Job, Ran, Rejected, Remote};
pub use worker::{serve, Batch};

/// Re-exported for `#[unirun::remote]`'s expansion.
#[doc(hidden)]
pub use inventory;

/// The client underneath, for the facade's cluster bench (its raw
/// request/reply floor): through here, the facade's tests need no
/// async-nats dev-dependency, which every test build would compile.
#[doc(hidden)]
pub use async_nats;
