//! The frame a child sends back: an 8-byte little-endian length, then a
//! postcard-encoded [`Reply`].

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use unirun_core::{JoinError, PanicLocation};
use unirun_platform::process as sys;

/// Bytes of the length prefix.
pub(crate) const HEADER: usize = 8;
/// The most a reader allocates ahead of the bytes actually arriving, so a
/// corrupt length cannot make the parent allocate wildly.
const MAX_PREALLOC: usize = 64 << 20;

/// The most of a panic message a child sends (bytes): a longer one is cut
/// at a character boundary and says how much was cut.
pub const MAX_PANIC_MESSAGE: usize = 64 << 10;
/// The most of the file name of a panic's location a child sends (bytes).
const MAX_PANIC_FILE: usize = 4 << 10;
/// The most of each text of a [`Reply::Failed`] a child sends (bytes).
const MAX_FAILURE_TEXT: usize = 16 << 10;
/// The largest error report (a frame that is not a value) the parent
/// accepts (bytes): a child of ours never sends more (its texts are capped
/// above); a larger one is read past and reported as too large, unkept.
pub const MAX_ERROR_FRAME: usize = 256 << 10;
/// The first byte of a [`Reply::Value`] frame's body (postcard writes an
/// enum's variant index first, as a varint).
const VALUE_TAG: u8 = 0;

/// `text`, or its first `max` bytes (at a character boundary) followed by
/// a marker saying how much was cut.
pub(crate) fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}... [truncated: {} of {} bytes cut]",
        &text[..cut],
        text.len() - cut,
        text.len()
    )
}

/// What a child reports.
#[derive(Serialize, Deserialize)]
pub(crate) enum Reply<T> {
    /// The closure's value.
    Value(T),
    /// The closure panicked.
    Panic {
        message: Option<String>,
        location: Option<(String, u32, u32)>,
    },
    /// Setting up or encoding failed in the child.
    Failed { what: String, detail: String },
}

impl<T> Reply<T> {
    /// The reply for a caught panic, its texts capped
    /// ([`MAX_PANIC_MESSAGE`]): what crosses the pipe stays small whatever
    /// the panic said, and the message is not copied whole.
    pub(crate) fn panic(err: &JoinError) -> Self {
        Reply::Panic {
            message: err
                .panic_message()
                .map(|message| capped(message, MAX_PANIC_MESSAGE)),
            location: err
                .panic_location()
                .map(|at| (capped(at.file(), MAX_PANIC_FILE), at.line(), at.column())),
        }
    }

    /// The reply for a failure in the child, its texts capped.
    pub(crate) fn failed(what: &str, detail: &str) -> Self {
        Reply::Failed {
            what: capped(what, MAX_FAILURE_TEXT),
            detail: capped(detail, MAX_FAILURE_TEXT),
        }
    }

    /// What the caller's handle resolves to.
    pub(crate) fn into_result(self) -> Result<T, JoinError> {
        match self {
            Reply::Value(value) => Ok(value),
            Reply::Panic { message, location } => Err(JoinError::panicked_remote(
                message.unwrap_or_else(|| "a panic with a non-string payload".to_string()),
                location.map(|(file, line, column)| PanicLocation::new(file, line, column)),
            )),
            Reply::Failed { what, detail } => Err(JoinError::transport(
                "child",
                format!("{what} failed in the child: {detail}"),
            )),
        }
    }
}

/// Encodes `reply` as one frame (length prefix included).
pub(crate) fn encode<T: Serialize>(reply: &Reply<T>) -> Result<Vec<u8>, postcard::Error> {
    // Room for a small reply, so the usual one is a single allocation.
    let mut frame = Vec::with_capacity(HEADER + 56);
    frame.extend_from_slice(&[0u8; HEADER]);
    let mut frame = postcard::to_extend(reply, frame)?;
    let len = (frame.len() - HEADER) as u64;
    frame[..HEADER].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Decodes a frame's body. Trailing bytes mean the child sent another type.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<Reply<T>, JoinError> {
    match postcard::take_from_bytes::<Reply<T>>(body) {
        Ok((reply, [])) => Ok(reply),
        Ok((_, rest)) => Err(JoinError::transport(
            "decode",
            format!(
                "{} bytes left over after the result: the child sent a different type",
                rest.len()
            ),
        )),
        Err(err) => Err(JoinError::transport(
            "decode",
            format!("the child's result does not decode as the expected type: {err}"),
        )),
    }
}

/// What reading a frame came to.
pub(crate) enum Read {
    /// A whole frame body.
    Frame(Vec<u8>),
    /// The pipe ended first, after this many bytes (header included).
    Eof { got: usize, expected: Option<u64> },
    /// The deadline passed first.
    TimedOut,
}

/// Bytes asked for by the first read of a frame: a small frame (most
/// calls' arguments and results) arrives whole in one system call.
const FIRST_READ: usize = 512;

/// Reads one reply frame from `fd` as [`read_frame`] does, except that an
/// error report (a frame that is not a [`Reply::Value`]) larger than
/// [`MAX_ERROR_FRAME`] is read past without being kept: the frame returned
/// in its place is a small [`Reply::Failed`] saying so. A value's frame is
/// the caller's data and is read whole, however large.
pub(crate) fn read_reply(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Read> {
    read_capped(fd, deadline, true)
}

/// Reads one frame from `fd`, waiting at most until `deadline`.
///
/// The first read asks for up to [`FIRST_READ`] bytes, so it may take
/// bytes past the frame's end: the writer must send nothing after a frame
/// until it hears back (or exit). Every use here alternates that way: a
/// worker replies only to a request, the parent sends the next request
/// only after the reply, and a forked child writes one frame and exits.
pub(crate) fn read_frame(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<Read> {
    read_capped(fd, deadline, false)
}

/// [`read_frame`], or with `replies` [`read_reply`].
fn read_capped(fd: BorrowedFd<'_>, deadline: Option<Instant>, replies: bool) -> io::Result<Read> {
    let mut first = [0u8; FIRST_READ];
    let mut got = 0;
    // The header, and for a reply too large for an error report the body's
    // first byte, which says whether it is one.
    let mut need = HEADER;
    while got < need {
        match sys::read_until(fd, &mut first[got..], deadline)? {
            None => return Ok(Read::TimedOut),
            Some(0) => {
                return Ok(Read::Eof {
                    got,
                    expected: None,
                })
            }
            Some(n) => got += n,
        }
        if got >= HEADER && need == HEADER && replies && frame_len(&first) > MAX_ERROR_FRAME as u64
        {
            need = HEADER + 1;
        }
    }
    let len = frame_len(&first);
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    if need > HEADER && first[HEADER] != VALUE_TAG {
        return skip_report(fd, deadline, len, got - HEADER, &mut first);
    }
    let have = &first[HEADER..got];
    if have.len() >= want {
        return Ok(Read::Frame(have[..want].to_vec()));
    }
    let mut body = Vec::with_capacity(want.min(MAX_PREALLOC));
    body.extend_from_slice(have);
    let mut chunk = vec![0u8; (64 << 10).min(want - body.len())];
    while body.len() < want {
        let room = (want - body.len()).min(chunk.len());
        match sys::read_until(fd, &mut chunk[..room], deadline)? {
            None => return Ok(Read::TimedOut),
            Some(0) => {
                return Ok(Read::Eof {
                    got: HEADER + body.len(),
                    expected: Some(len),
                })
            }
            Some(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(Read::Frame(body))
}

/// The body length a frame's header (the first [`HEADER`] bytes) gives.
fn frame_len(frame: &[u8]) -> u64 {
    let mut header = [0u8; HEADER];
    header.copy_from_slice(&frame[..HEADER]);
    u64::from_le_bytes(header)
}

/// Reads past the rest of an error report of `len` bytes, `have` of which
/// are read already, keeping none of it (`buf` is scratch); the frame in
/// its place says it was too large. The pipe is then at the next frame, as
/// after any other: a pool worker keeps serving.
fn skip_report(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    len: u64,
    have: usize,
    buf: &mut [u8],
) -> io::Result<Read> {
    let mut left = len - have as u64;
    while left > 0 {
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        match sys::read_until(fd, &mut buf[..room], deadline)? {
            None => return Ok(Read::TimedOut),
            Some(0) => {
                return Ok(Read::Eof {
                    got: HEADER + (len - left) as usize,
                    expected: Some(len),
                })
            }
            Some(n) => left -= n as u64,
        }
    }
    let detail = format!(
        "its error report of {len} bytes is over the parent's cap of {MAX_ERROR_FRAME} bytes \
         (MAX_ERROR_FRAME), so it was read past and dropped"
    );
    let frame = encode(&Reply::<()>::failed("reporting an error", &detail))
        .map_err(|err| io::Error::other(err.to_string()))?;
    Ok(Read::Frame(frame[HEADER..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn round_trip<T: Serialize + DeserializeOwned>(value: T) -> Result<T, JoinError> {
        let frame = encode(&Reply::Value(value)).unwrap();
        decode::<T>(&frame[HEADER..])?.into_result()
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(round_trip(42u64).unwrap(), 42);
        assert_eq!(round_trip("hi".to_string()).unwrap(), "hi");
        assert_eq!(round_trip(vec![1u8, 2, 3]).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn type_mismatch_is_a_decode_error() {
        let frame = encode(&Reply::Value(("a long string".to_string(), 7u64))).unwrap();
        let err = decode::<u8>(&frame[HEADER..]).err().unwrap();
        assert!(err.is_transport());
        assert!(err.to_string().contains("decode"), "{err}");
    }

    #[test]
    fn truncated_body_is_a_decode_error() {
        let frame = encode(&Reply::Value("hello world".to_string())).unwrap();
        let cut = &frame[HEADER..frame.len() - 3];
        let err = decode::<String>(cut).err().unwrap();
        assert!(err.is_transport());
        assert!(err.to_string().contains("decode"), "{err}");
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        for body in [&[][..], &[0xff; 3], &[9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]] {
            assert!(decode::<Vec<String>>(body).is_err());
        }
    }

    #[test]
    fn panics_carry_message_and_location() {
        let err = unirun_core::catch_panic(|| panic!("boom")).unwrap_err();
        let frame = encode(&Reply::<u8>::panic(&err)).unwrap();
        let err = decode::<u8>(&frame[HEADER..])
            .unwrap()
            .into_result()
            .unwrap_err();
        assert_eq!(err.panic_message(), Some("boom"));
        assert!(err.panic_location().unwrap().file().ends_with("wire.rs"));
    }

    #[test]
    fn frames_read_back_and_truncation_is_seen() {
        let (r, w) = sys::pipe().unwrap();
        let frame = encode(&Reply::Value(5u32)).unwrap();
        sys::write_all(w.as_fd(), &frame).unwrap();
        drop(w);
        let Read::Frame(body) = read_frame(r.as_fd(), None).unwrap() else {
            panic!("a whole frame")
        };
        assert_eq!(decode::<u32>(&body).unwrap().into_result().unwrap(), 5);
        let (r, w) = sys::pipe().unwrap();
        sys::write_all(w.as_fd(), &frame[..frame.len() - 1]).unwrap();
        drop(w);
        match read_frame(r.as_fd(), None).unwrap() {
            Read::Eof { got, expected } => {
                assert_eq!(got, frame.len() - 1);
                assert_eq!(expected, Some((frame.len() - HEADER) as u64));
            }
            _ => panic!("a truncated frame"),
        }
    }

    #[test]
    fn frames_longer_than_the_first_read_arrive_whole() {
        for size in [FIRST_READ - HEADER - 4, FIRST_READ, 3 * FIRST_READ, 200_000] {
            let (r, w) = sys::pipe().unwrap();
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let frame = encode(&Reply::Value(data.clone())).unwrap();
            // Written in pieces by another thread, so reads see partial frames.
            let writer = std::thread::spawn(move || {
                for piece in frame.chunks(333) {
                    sys::write_all(w.as_fd(), piece).unwrap();
                }
            });
            let Read::Frame(body) = read_frame(r.as_fd(), None).unwrap() else {
                panic!("a whole frame of {size} bytes")
            };
            writer.join().unwrap();
            assert_eq!(
                decode::<Vec<u8>>(&body).unwrap().into_result().unwrap(),
                data
            );
        }
    }

    #[test]
    fn a_huge_panic_message_is_cut_in_the_child_and_says_how_much() {
        let huge = "é".repeat(MAX_PANIC_MESSAGE); // 2 bytes each: cut mid-way
                                                  // `resume_unwind`: no hook prints the message.
        let err = unirun_core::catch_panic(|| std::panic::resume_unwind(Box::new(huge.clone())))
            .unwrap_err();
        let frame = encode(&Reply::<u8>::panic(&err)).unwrap();
        assert!(frame.len() < MAX_PANIC_MESSAGE + 1024, "{}", frame.len());
        let err = decode::<u8>(&frame[HEADER..])
            .unwrap()
            .into_result()
            .unwrap_err();
        let message = err.panic_message().unwrap();
        let kept = MAX_PANIC_MESSAGE / 2 * 2;
        assert!(message.starts_with(&huge[..kept]));
        assert!(
            message.ends_with(&format!(
                "... [truncated: {} of {} bytes cut]",
                huge.len() - kept,
                huge.len()
            )),
            "{}",
            &message[kept..]
        );
        // Short texts pass unchanged.
        assert_eq!(capped("short", MAX_PANIC_MESSAGE), "short");
    }

    #[test]
    fn an_oversized_error_report_is_read_past_not_kept_and_the_next_frame_reads() {
        let report = Reply::<u8>::Panic {
            message: Some("x".repeat(3 * MAX_ERROR_FRAME)),
            location: None,
        };
        let frame = encode(&report).unwrap();
        let next = encode(&Reply::Value(7u8)).unwrap();
        let (r, w) = sys::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            sys::write_all(w.as_fd(), &frame).unwrap();
            sys::write_all(w.as_fd(), &next).unwrap();
        });
        let Read::Frame(body) = read_reply(r.as_fd(), None).unwrap() else {
            panic!("a frame in place of the report")
        };
        assert!(body.len() < 1024, "{}", body.len());
        let err = decode::<u8>(&body).unwrap().into_result().unwrap_err();
        assert!(err.is_transport());
        assert!(err.to_string().contains("MAX_ERROR_FRAME"), "{err}");
        assert!(
            err.to_string().contains(&MAX_ERROR_FRAME.to_string()),
            "{err}"
        );
        // A worker's pipe stays in step: its next reply reads as usual.
        let Read::Frame(body) = read_reply(r.as_fd(), None).unwrap() else {
            panic!("the next frame")
        };
        assert_eq!(decode::<u8>(&body).unwrap().into_result().unwrap(), 7);
        writer.join().unwrap();
        // A value is the caller's data: read whole, however large.
        let (r, w) = sys::pipe().unwrap();
        let big = vec![5u8; 2 * MAX_ERROR_FRAME];
        let frame = encode(&Reply::Value(big.clone())).unwrap();
        let writer = std::thread::spawn(move || sys::write_all(w.as_fd(), &frame).unwrap());
        let Read::Frame(body) = read_reply(r.as_fd(), None).unwrap() else {
            panic!("a whole value")
        };
        writer.join().unwrap();
        assert_eq!(
            decode::<Vec<u8>>(&body).unwrap().into_result().unwrap(),
            big
        );
    }

    #[test]
    fn a_corrupt_length_does_not_allocate_it() {
        let (r, w) = sys::pipe().unwrap();
        sys::write_all(w.as_fd(), &u64::MAX.to_le_bytes()).unwrap();
        drop(w);
        assert!(matches!(
            read_frame(r.as_fd(), None).unwrap(),
            Read::Eof { got: HEADER, .. }
        ));
    }
}
