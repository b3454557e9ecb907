//! Functions callable across machines, registered by name at link time
//! (`#[unirun::remote]` submits a [`Remote`] for each), and the job a
//! worker runs: find the function by name, check its signature, decode
//! the argument, call it, encode the result.

use std::any::type_name;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One remote-callable function, as `#[unirun::remote]` registers it.
/// Not built by hand: the macro writes it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Remote {
    /// `module::path::name:line` (the line of its `#[unirun::remote]`, so
    /// two nested functions of one name in one module differ).
    pub name: &'static str,
    /// The function's address, to find its name from a `fn` pointer.
    pub address: fn() -> usize,
    /// The argument and result type names.
    pub types: fn() -> (&'static str, &'static str),
    /// Decodes the argument, calls the function, encodes the result.
    pub invoke: fn(&[u8]) -> Result<Vec<u8>, Rejected>,
}

inventory::collect!(Remote);

/// The body of [`Remote::invoke`] for `f`.
#[doc(hidden)]
pub fn invoke<A, R>(f: fn(A) -> R, bytes: &[u8]) -> Result<Vec<u8>, Rejected>
where
    A: DeserializeOwned,
    R: Serialize,
{
    let arg: A = postcard::from_bytes(bytes)
        .map_err(|err| Rejected::Decode(format!("argument of type {}: {err}", type_name::<A>())))?;
    let out = f(arg);
    postcard::to_allocvec(&out)
        .map_err(|err| Rejected::Decode(format!("result of type {}: {err}", type_name::<R>())))
}

/// The type names of `fn(A) -> R`, for [`Remote::types`].
#[doc(hidden)]
pub fn types<A, R>() -> (&'static str, &'static str) {
    (type_name::<A>(), type_name::<R>())
}

/// Why a worker did not run a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejected {
    /// The argument or result did not (de)serialize.
    Decode(String),
    /// No function of that name in the worker's build, or one of another
    /// signature or build.
    Unknown(String),
}

/// A job as the worker hands it to a pool process: which function, the
/// signature the caller expects, the encoded argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The function's registered name.
    pub name: String,
    /// [`signature`] of the function in the caller's build.
    pub signature: u64,
    /// The postcard-encoded argument.
    pub payload: Vec<u8>,
}

/// Runs `job` in this process: the function registered under its name,
/// if its signature matches this build's. A panic in the function
/// propagates (the pool process catches it).
pub fn execute(job: Job) -> Result<Vec<u8>, Rejected> {
    let remote = by_name(&job.name).ok_or_else(|| {
        Rejected::Unknown(format!(
            "no function `{}` is registered with #[unirun::remote] in the worker's build",
            job.name
        ))
    })?;
    let mine = signature(remote);
    if mine != job.signature {
        let (a, r) = (remote.types)();
        return Err(Rejected::Unknown(format!(
            "`{}` differs between the caller's build and the worker's (worker: fn({a}) -> {r}, \
             signature {mine:016x}; caller: {:016x}): run the same binary on both",
            job.name, job.signature
        )));
    }
    (remote.invoke)(&job.payload)
}

/// What one job of a batch ([`execute_all`]) did in the pool process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ran {
    /// The encoded result, or why the job was not run.
    Done(Result<Vec<u8>, Rejected>),
    /// The function panicked: the panic's message and location (file,
    /// line, column), as a panic of a task reports them.
    Panicked {
        /// The panic's message, if it had one.
        message: Option<String>,
        /// Where it panicked.
        location: Option<(String, u32, u32)>,
    },
}

/// Runs `jobs` one after the other in this process, as [`execute`] runs
/// each, with a panic of one caught and reported as that job's
/// [`Ran::Panicked`] (the others run on): a worker sends the jobs that
/// arrive together to a pool process in one frame. A crash (a signal)
/// still takes the whole batch; the worker then runs its jobs one by one.
pub fn execute_all(jobs: Vec<Job>) -> Vec<Ran> {
    jobs.into_iter()
        .map(|job| match unirun_core::catch_panic(|| execute(job)) {
            Ok(done) => Ran::Done(done),
            Err(err) => Ran::Panicked {
                message: err.panic_message().map(str::to_string),
                location: err
                    .panic_location()
                    .map(|l| (l.file().to_string(), l.line(), l.column())),
            },
        })
        .collect()
}

/// Two registered functions that cannot be told apart (see [`check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The first function's registered name.
    pub first: &'static str,
    /// The second function's registered name.
    pub second: &'static str,
    /// What they share: `"name"` or `"address"`.
    pub shared: &'static str,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "two #[unirun::remote] functions share one {}: `{}` and `{}` (a call of one could \
             run the other); give one of them another name or move it",
            self.shared, self.first, self.second
        )
    }
}

impl std::error::Error for Conflict {}

/// Checks, once per process, that every registered function has a name
/// and an address of its own: a caller finds a function by its address
/// and a worker by its name, so a shared one would run the wrong function.
/// Callers and workers check it before their first job.
pub fn check() -> Result<(), Conflict> {
    static CHECKED: OnceLock<Result<(), Conflict>> = OnceLock::new();
    CHECKED
        .get_or_init(|| conflict(inventory::iter::<Remote>.into_iter()).map_or(Ok(()), Err))
        .clone()
}

/// The first pair of `remotes` sharing a name or an address, if any.
fn conflict<'a>(remotes: impl Iterator<Item = &'a Remote>) -> Option<Conflict> {
    let mut names = std::collections::HashMap::new();
    let mut addresses = std::collections::HashMap::new();
    for remote in remotes {
        if let Some(first) = names.insert(remote.name, remote.name) {
            return Some(Conflict {
                first,
                second: remote.name,
                shared: "name",
            });
        }
        if let Some(first) = addresses.insert((remote.address)(), remote.name) {
            return Some(Conflict {
                first,
                second: remote.name,
                shared: "address",
            });
        }
    }
    None
}

/// The registered function at `address`, if any.
pub fn by_address(address: usize) -> Option<&'static Remote> {
    inventory::iter::<Remote>
        .into_iter()
        .find(|r| (r.address)() == address)
}

/// The registered function called `name`, if any.
pub fn by_name(name: &str) -> Option<&'static Remote> {
    inventory::iter::<Remote>
        .into_iter()
        .find(|r| r.name == name)
}

/// A hash of the function's name and argument and result types, and of
/// the build: the executable's build-id (or a hash of its bytes), and
/// every registered function's name and types (so two builds never take
/// each other's jobs, even with the same remote functions).
pub fn signature(remote: &Remote) -> u64 {
    let (a, r) = (remote.types)();
    let mut hash = Fnv::new();
    hash.write(remote.name.as_bytes());
    hash.write(a.as_bytes());
    hash.write(r.as_bytes());
    hash.write(&build_hash().to_le_bytes());
    hash.finish()
}

/// What tells this executable from another build: its GNU build-id (the
/// linker's hash of its contents), or without one a hash of the
/// executable's bytes; empty if neither can be had.
fn executable_identity() -> Vec<u8> {
    if let Some(id) = unirun_platform::build_id::build_id() {
        return id;
    }
    std::env::current_exe()
        .and_then(std::fs::read)
        .map(|bytes| {
            let mut hash = Fnv::new();
            hash.write(&bytes);
            hash.finish().to_le_bytes().to_vec()
        })
        .unwrap_or_default()
}

/// The build part of [`signature`], computed once: the executable's
/// identity, and every registered function's name and types.
fn build_hash() -> u64 {
    static BUILD: OnceLock<u64> = OnceLock::new();
    *BUILD.get_or_init(|| {
        hash_build(
            &executable_identity(),
            inventory::iter::<Remote>.into_iter(),
        )
    })
}

/// The hash of a build of executable `identity` registering `remotes`.
fn hash_build<'a>(identity: &[u8], remotes: impl Iterator<Item = &'a Remote>) -> u64 {
    let mut all: Vec<(&str, &str, &str)> = remotes
        .map(|r| {
            let (a, res) = (r.types)();
            (r.name, a, res)
        })
        .collect();
    all.sort_unstable();
    let mut hash = Fnv::new();
    hash.write(env!("CARGO_PKG_VERSION").as_bytes());
    hash.write(identity);
    for (name, a, r) in all {
        for part in [name, a, r] {
            hash.write(part.as_bytes());
            hash.write(&[0]);
        }
    }
    hash.finish()
}

/// 64-bit FNV-1a: stable across builds and machines (std's hasher is not
/// promised to be).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 ^= 0xff;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u32 {
        x * 2
    }

    inventory::submit! {
        Remote {
            name: "tests::double",
            address: || double as fn(u32) -> u32 as usize,
            types: types::<u32, u32>,
            invoke: |bytes| invoke(double as fn(u32) -> u32, bytes),
        }
    }

    fn job(name: &str, signature: u64, payload: Vec<u8>) -> Job {
        Job {
            name: name.to_string(),
            signature,
            payload,
        }
    }

    #[test]
    fn a_registered_function_runs_by_name_and_is_found_by_address() {
        let remote = by_address(double as fn(u32) -> u32 as usize).expect("registered");
        assert_eq!(remote.name, "tests::double");
        let out = execute(job(
            remote.name,
            signature(remote),
            postcard::to_allocvec(&21u32).unwrap(),
        ));
        assert_eq!(postcard::from_bytes::<u32>(&out.unwrap()).unwrap(), 42);
    }

    #[test]
    fn unknown_names_and_other_signatures_are_refused_naming_them() {
        let Err(Rejected::Unknown(why)) = execute(job("tests::triple", 0, Vec::new())) else {
            panic!("an unknown name runs nothing");
        };
        assert!(
            why.contains("tests::triple") && why.contains("#[unirun::remote]"),
            "{why}"
        );

        let remote = by_name("tests::double").unwrap();
        let other = signature(remote) ^ 1;
        let Err(Rejected::Unknown(why)) = execute(job(remote.name, other, Vec::new())) else {
            panic!("another signature runs nothing");
        };
        assert!(
            why.contains("fn(u32) -> u32") && why.contains("same binary"),
            "{why}"
        );
    }

    fn remote(name: &'static str, address: fn() -> usize) -> Remote {
        Remote {
            name,
            address,
            types: types::<u32, u32>,
            invoke: |bytes| invoke(double as fn(u32) -> u32, bytes),
        }
    }

    /// Two functions merged into one address (identical bodies in an
    /// optimized build) or of one name are refused, naming both: neither
    /// would be found for sure.
    #[test]
    fn a_shared_address_or_name_is_a_conflict_naming_both() {
        let merged = [
            remote("m::mix_unsigned:1", || 0x1000),
            remote("m::other:2", || 0x2000),
            remote("m::mix_signed:3", || 0x1000),
        ];
        let found = conflict(merged.iter()).expect("one address for two functions");
        assert_eq!(
            found,
            Conflict {
                first: "m::mix_unsigned:1",
                second: "m::mix_signed:3",
                shared: "address",
            }
        );
        let text = found.to_string();
        assert!(
            text.contains("m::mix_unsigned:1") && text.contains("m::mix_signed:3"),
            "{text}"
        );

        let named = [remote("m::inner:7", || 1), remote("m::inner:7", || 2)];
        assert_eq!(conflict(named.iter()).unwrap().shared, "name");

        let apart = [remote("m::inner:7", || 1), remote("m::inner:9", || 2)];
        assert_eq!(conflict(apart.iter()), None);
        // This test binary's own registrations are apart.
        assert_eq!(check(), Ok(()));
    }

    /// Two builds of the same remote functions differ by their
    /// executables: a rebuild's worker refuses the other build's jobs.
    #[test]
    fn the_build_hash_covers_the_executable() {
        let remotes = [remote("m::f:1", || 1)];
        let this = hash_build(b"build-one", remotes.iter());
        assert_eq!(this, hash_build(b"build-one", remotes.iter()));
        assert_ne!(this, hash_build(b"build-two", remotes.iter()));
        #[cfg(target_os = "linux")]
        assert_eq!(
            executable_identity(),
            unirun_platform::build_id::build_id().expect("this test binary's build-id")
        );
    }

    fn halve(x: u32) -> u32 {
        assert!(x.is_multiple_of(2), "odd: {x}");
        x / 2
    }

    inventory::submit! {
        Remote {
            name: "tests::halve",
            address: || halve as fn(u32) -> u32 as usize,
            types: types::<u32, u32>,
            invoke: |bytes| invoke(halve as fn(u32) -> u32, bytes),
        }
    }

    /// A panic in a batch is that job's, with its message and location;
    /// the jobs after it run, and every job answers in its place.
    #[test]
    fn a_batch_answers_each_job_and_a_panic_stays_its_own() {
        let remote = by_name("tests::halve").unwrap();
        let job = |x: u32| Job {
            name: remote.name.to_string(),
            signature: signature(remote),
            payload: postcard::to_allocvec(&x).unwrap(),
        };
        let ran = execute_all(vec![
            job(4),
            job(3),
            job(10),
            self::job("nope", 0, Vec::new()),
        ]);
        assert_eq!(ran.len(), 4);
        let value = |ran: &Ran| match ran {
            Ran::Done(Ok(bytes)) => postcard::from_bytes::<u32>(bytes).unwrap(),
            other => panic!("not a value: {other:?}"),
        };
        assert_eq!((value(&ran[0]), value(&ran[2])), (2, 5));
        let Ran::Panicked { message, location } = &ran[1] else {
            panic!("job 1 panicked: {:?}", ran[1]);
        };
        assert_eq!(message.as_deref(), Some("odd: 3"));
        assert!(location
            .as_ref()
            .is_some_and(|(file, ..)| file.ends_with("registry.rs")));
        assert!(matches!(&ran[3], Ran::Done(Err(Rejected::Unknown(_)))));
    }

    #[test]
    fn an_undecodable_argument_is_a_decode_error_naming_its_type() {
        let remote = by_name("tests::double").unwrap();
        let Err(Rejected::Decode(why)) = execute(job(remote.name, signature(remote), Vec::new()))
        else {
            panic!("nothing to decode");
        };
        assert!(why.contains("u32"), "{why}");
    }
}
