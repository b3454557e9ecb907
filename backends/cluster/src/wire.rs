//! What travels besides the argument: the job's headers, and the reply a
//! worker sends to the caller's inbox (postcard-encoded [`Reply`]).

use serde::{Deserialize, Serialize};
use unirun_core::{JoinError, PanicLocation};

use crate::registry::{Ran, Rejected};

/// Header: the registered name of the function to run.
pub(crate) const FUNCTION: &str = "Unirun-Function";
/// Header: the caller's [`signature`](crate::registry::signature) of it, hex.
pub(crate) const SIGNATURE: &str = "Unirun-Signature";
/// Header: the subject the worker publishes the [`Reply`] to.
pub(crate) const REPLY_TO: &str = "Unirun-Reply-To";
/// Header: the deadline, milliseconds since the Unix epoch.
pub(crate) const DEADLINE: &str = "Unirun-Deadline";
/// Header: the consumer's `ack_wait` as the caller set it, milliseconds
/// (a worker gives signs of life at half of it).
pub(crate) const ACK_WAIT: &str = "Unirun-Ack-Wait";
/// Header: the consumer's `max_deliver` as the caller set it (on that
/// delivery, the worker's signs of life go to the caller too).
pub(crate) const MAX_DELIVER: &str = "Unirun-Max-Deliver";

/// Header: on a pack (several calls of one function in one message, as
/// `map` sends them), how many calls it carries. Its payload is then the
/// postcard-encoded `Vec<Vec<u8>>` of their arguments, and the value of
/// its reply the postcard-encoded `Vec<Reply>` of their answers, in order.
pub(crate) const PACK: &str = "Unirun-Pack";

/// Room kept in a message for what travels besides the argument or result
/// (headers, the reply's envelope), on top of the names that go with it.
const HEADROOM: usize = 512;

/// Whether a job of `payload` bytes for function `name`, answered at
/// `reply_to`, fits in the server's `max_payload` (headers included: the
/// server closes the connection of a client that sends more).
pub(crate) fn job_fits(payload: usize, name: &str, reply_to: &str, max_payload: usize) -> bool {
    payload + name.len() + 2 * reply_to.len() + HEADROOM <= max_payload
}

/// `reply`, or if it is a value that does not fit in the server's
/// `max_payload`, a decode error naming its size and the limit (the
/// value could never reach the caller).
pub(crate) fn fit(reply: Reply, worker: &str, max_payload: usize) -> Reply {
    match reply {
        Reply::Value(bytes) if bytes.len() + worker.len() + HEADROOM > max_payload => {
            Reply::Decode(format!(
                "the result is {} bytes encoded, over the NATS server's max_payload of {max_payload} \
                 bytes (less about {HEADROOM} for the envelope): return less, or raise the \
                 server's max_payload",
                bytes.len()
            ))
        }
        reply => reply,
    }
}

/// The answer to a pack: each call's reply [`fit`] alone, and all of them
/// as one value if that fits in `max_payload`; else [`Reply::Unpack`].
pub(crate) fn fit_pack(replies: Vec<Reply>, worker: &str, max_payload: usize) -> Reply {
    let replies: Vec<Reply> = replies
        .into_iter()
        .map(|reply| fit(reply, worker, max_payload))
        .collect();
    match postcard::to_allocvec(&replies) {
        Ok(bytes) if bytes.len() + worker.len() + HEADROOM <= max_payload => Reply::Value(bytes),
        _ => Reply::Unpack,
    }
}

/// A worker's answer to one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The encoded result.
    Value(Vec<u8>),
    /// The function panicked in the pool process.
    Panicked {
        message: Option<String>,
        location: Option<(String, u32, u32)>,
    },
    /// The pool process was killed by a signal.
    Crashed { signal: i32 },
    /// The pool process ran out of time.
    TimedOut,
    /// The argument or result did not (de)serialize.
    Decode(String),
    /// The worker does not know the function (or knows another one).
    Unknown(String),
    /// The worker's pool failed otherwise (it was shut down, a pipe broke).
    Worker(String),
    /// Not an answer: the job's last delivery is running (sent at its
    /// start and every half `ack_wait`).
    Alive,
    /// The answers of a pack did not fit in one message together: the
    /// caller sends its calls again, one per message.
    Unpack,
}

impl Reply {
    /// The reply that reports `err`, a failure of the worker's pool call.
    pub(crate) fn from_join_error(err: &JoinError) -> Reply {
        if err.is_panic() {
            Reply::Panicked {
                message: err.panic_message().map(str::to_string),
                location: err
                    .panic_location()
                    .map(|l| (l.file().to_string(), l.line(), l.column())),
            }
        } else if let Some(signal) = err.signal() {
            Reply::Crashed { signal }
        } else if err.is_timeout() {
            Reply::TimedOut
        } else {
            Reply::Worker(err.to_string())
        }
    }

    /// The reply for what a job of a batch did in the pool process.
    pub(crate) fn from_ran(ran: Ran) -> Reply {
        match ran {
            Ran::Done(Ok(bytes)) => Reply::Value(bytes),
            Ran::Done(Err(Rejected::Decode(detail))) => Reply::Decode(detail),
            Ran::Done(Err(Rejected::Unknown(detail))) => Reply::Unknown(detail),
            Ran::Panicked { message, location } => Reply::Panicked { message, location },
        }
    }

    /// The caller's outcome: the encoded result, or the `JoinError` this
    /// reply stands for (`signal_name` names a crash's signal).
    pub(crate) fn into_result(
        self,
        signal_name: fn(i32) -> &'static str,
    ) -> Result<Vec<u8>, JoinError> {
        match self {
            Reply::Value(bytes) => Ok(bytes),
            Reply::Panicked { message, location } => Err(JoinError::panicked_remote(
                message.unwrap_or_else(|| "remote function panicked".to_string()),
                location.map(|(file, line, col)| PanicLocation::new(file, line, col)),
            )),
            Reply::Crashed { signal } => Err(JoinError::crashed(signal, signal_name(signal))),
            Reply::TimedOut => Err(JoinError::timed_out()),
            Reply::Decode(detail) => Err(JoinError::transport("decode", detail)),
            Reply::Unknown(detail) => Err(JoinError::transport("remote function", detail)),
            Reply::Worker(detail) => Err(JoinError::transport("worker", detail)),
            Reply::Alive => Err(JoinError::transport(
                "worker",
                "a sign of life is no answer",
            )),
            Reply::Unpack => Err(JoinError::transport(
                "worker",
                "the answers of a pack did not fit in one message",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_over_max_payload_becomes_a_decode_error_naming_both_sizes() {
        let Reply::Decode(why) = fit(Reply::Value(vec![0; 2000]), "w", 1024) else {
            panic!("2000 bytes do not fit in 1024");
        };
        assert!(
            why.contains("2000 bytes") && why.contains("max_payload of 1024"),
            "{why}"
        );
        assert!(matches!(
            fit(Reply::Value(vec![0; 10]), "w", 1024),
            Reply::Value(_)
        ));
        assert!(matches!(fit(Reply::TimedOut, "w", 0), Reply::TimedOut));
    }

    /// Answers that fit alone but not together make the pack go again
    /// one call per message; a value too large alone is that call's
    /// decode error, and the rest of the pack is answered.
    #[test]
    fn a_pack_answer_fits_as_a_whole_or_unpacks() {
        let Reply::Value(bytes) = fit_pack(
            vec![
                Reply::Value(vec![1; 10]),
                Reply::Value(vec![0; 5000]),
                Reply::TimedOut,
            ],
            "w",
            4096,
        ) else {
            panic!("fits once the large value is an error");
        };
        let replies: Vec<Reply> = postcard::from_bytes(&bytes).unwrap();
        assert!(matches!(&replies[0], Reply::Value(v) if v.len() == 10));
        assert!(matches!(&replies[1], Reply::Decode(why) if why.contains("5000 bytes")));
        assert!(matches!(&replies[2], Reply::TimedOut));
        assert!(matches!(
            fit_pack(vec![Reply::Value(vec![0; 3000]); 2], "w", 4096),
            Reply::Unpack
        ));
    }

    #[test]
    fn a_job_fits_with_its_headers_or_not() {
        assert!(job_fits(100, "m::f:1", "_INBOX.abc.1", 1024));
        assert!(!job_fits(1000, "m::f:1", "_INBOX.abc.1", 1024));
    }
}
