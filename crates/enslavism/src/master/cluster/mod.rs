//! Several masters, one lobby: the slave registry and the signalling
//! between masters, shared through Redis.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use enslavism::master::{Master, MasterConfig, NoHooks};
//! use enslavism::master::cluster::ClusterConfig;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = ClusterConfig::builder("redis://10.0.0.5:6379").name("eu").build()?;
//! let config = MasterConfig::builder().cluster(cluster).build()?;
//! let master = Master::bind("0.0.0.0:8081".parse()?, config, Arc::new(NoHooks))?;
//! # Ok(()) }
//! ```
//!
//! Each master claims a node number (12 bits) and gives client ids in its
//! own range, so a slave's answer to any client of the cluster is routed by
//! the client's id alone; slave ids are small numbers from a counter the
//! cluster shares. A registered slave is a Redis key with a TTL that its
//! master refreshes; every change is also appended to a stream that the
//! other masters follow, so they list it at once. Offers, answers,
//! candidates and rejections for a peer of another master travel on that
//! master's pub/sub channel, as the very 0.9.0 frames the peer receives.
//! The router stays free of I/O: it hands what must leave to the cluster's
//! task, which applies what comes in. [`MasterEvent`](super::MasterEvent)
//! reports Redis coming and going and the other masters' slaves.

mod config;
pub(crate) mod records;
pub(crate) mod sync;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use config::{
    ClusterConfig, ClusterConfigBuilder, DEFAULT_CLUSTER_NAME, DEFAULT_REDIS_TIMEOUT, DEFAULT_RELAY_TIMEOUT, DEFAULT_SLAVE_TTL,
    MIN_SLAVE_TTL,
};

/// What the router hands to the cluster's task.
#[derive(Debug)]
pub(crate) enum Command {
    /// A local slave is listed, or has new userData.
    Listed { id: u32, user_data: String },
    /// A local slave is gone.
    Unlisted { id: u32 },
    /// A frame for a peer of master `node` (a [`records::Relayed`]
    /// message); `offer` names the client and slave of an offer, refused
    /// back to the client when it cannot be delivered.
    Relay { node: u16, message: Bytes, offer: Option<(u32, u32)> },
    /// The router's stock of slave ids runs low: reserve another block.
    NeedSlaveIds,
    /// Local slave `id` gave way to another master's under the same id:
    /// the key is the other's now; the whole registry is read again, which
    /// lists the other.
    Displaced { id: u32 },
}

/// The router's way to the rest of the cluster.
pub(crate) struct ClusterOutlet {
    /// This master's node number.
    pub(crate) node: u16,
    commands: mpsc::UnboundedSender<Command>,
    /// True while the cluster's task is connected to Redis and in sync.
    connected: Arc<AtomicBool>,
}

impl ClusterOutlet {
    pub(crate) fn new(node: u16, commands: mpsc::UnboundedSender<Command>, connected: Arc<AtomicBool>) -> Self {
        ClusterOutlet { node, commands, connected }
    }

    /// True while frames can reach other masters.
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Hands a command to the cluster's task (which holds a sender too: the
    /// channel lives as long as the task).
    pub(crate) fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

/// A slave of another master, as this master lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteSlave {
    pub(crate) node: u16,
    pub(crate) user_data: String,
}
