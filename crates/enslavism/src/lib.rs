#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assets;
pub mod client;
pub mod config;
pub mod dial;
pub mod master;
mod masters;
pub mod metrics;
pub mod proto;
pub mod slave;
pub mod tls;
mod transport;

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;

/// The text of a caught panic (tasks catch their own, so that a bug costs
/// one peer, never the process; the Node binding catches its calls' too).
#[doc(hidden)]
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
