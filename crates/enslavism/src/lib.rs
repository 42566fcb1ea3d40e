//! enslavism: the easiest way to run many independent WebRTC game servers
//! ("slaves") that browsers pick from a list and talk to over data channels,
//! coordinated by one signalling server (the "master").
//!
//! This crate is the engine, usable from Rust alone: a [`master`], a
//! [`slave`], and a native [`client`] (what the browser bundle does, for bots
//! and load tests; `examples/bots.rs`). The `enslavism` npm package wraps it
//! for Node.js with enslavism 0.9.0's API. The wire format
//! is 0.9.0's ([`proto`]), so old and new slaves, masters and browser bundles
//! work together.
//!
//! ```no_run
//! # async fn run() -> Result<(), enslavism::master::MasterError> {
//! use std::sync::Arc;
//! use enslavism::master::{Master, MasterConfig, NoHooks};
//!
//! let master = Master::bind("127.0.0.1:8081".parse().unwrap(), MasterConfig::default(), Arc::new(NoHooks))?;
//! println!("signalling on ws://{}", master.local_addr().unwrap());
//! master.close().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod dial;
pub mod master;
pub mod proto;
pub mod slave;
pub mod tls;

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;

/// Where the master serves [`CLIENT_SCRIPT`].
pub const CLIENT_SCRIPT_PATH: &str = "/enslavism/client.js";

/// The browser client as a classic script defining the global
/// `MasterConnection`, built from `client/index.mjs` at compile time.
pub const CLIENT_SCRIPT: &str = include_str!(concat!(env!("OUT_DIR"), "/client.js"));

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
