//! A master with no application hooks, as a process of its own: what a
//! deployment that needs no auth runs without Node. The benchmark measures its
//! idle footprint.
//!
//!     cargo run --release --example master -- 127.0.0.1:8081
//!
//! Prints `listening <address>` once bound; stops when stdin closes (or on Ctrl-C).

use std::net::SocketAddr;
use std::sync::Arc;

use enslavism::master::{Master, MasterConfig, MasterHooks};

/// Accepts every slave and client.
struct OpenDoor;
impl MasterHooks for OpenDoor {}

mod support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into()).parse()?;
    // Worker threads: ENSLAVISM_THREADS, as for the addon, else one per core.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("ENSLAVISM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0) {
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async {
        let master = Master::bind(addr, MasterConfig::default(), Arc::new(OpenDoor))?;
        println!("listening {}", master.local_addr().map_or_else(|| addr.to_string(), |a| a.to_string()));
        support::stdin_closed().await;
        master.close().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
