//! placeholder
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod error;
mod flavor;
pub use error::Error;
pub use flavor::{CompatMode, Flavor, ThreadMode};

#[cfg(feature = "std")]
mod config;
#[cfg(feature = "std")]
mod env;
#[cfg(feature = "std")]
pub mod trace;
#[cfg(feature = "std")]
pub use config::RuntimeConfig;
#[cfg(feature = "std")]
pub use env::{EnvOverride, RejectedVar};
#[cfg(feature = "std")]
pub use trace::DecisionTrace;
