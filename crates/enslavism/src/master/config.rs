//! Limits and timeouts of a master: [`MasterConfig`], made by
//! [`MasterConfig::builder`] and checked once, when built.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::cluster::ClusterConfig;
use crate::config::{self, ConfigError, Unit};
use crate::tls::TlsIdentity;

/// Default largest WebSocket message a peer may send (SDP offers are a few kB;
/// a Register carries at most 64 KiB of userData).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// Default number of frames queued for one peer before it counts as too slow
/// and is disconnected.
pub const DEFAULT_OUTBOUND_QUEUE_LENGTH: usize = 1024;
/// Default time a peer has to send its HTTP request headers.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the application has to decide a handshake.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest HTTP request head our own server reads.
pub const DEFAULT_MAX_HTTP_HEADER_SIZE: usize = 64 * 1024;
/// Default time between pings to a quiet peer.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default silence after which a peer is dropped (a vanished slave leaves
/// every client's list within 15 s).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest number of connections (HTTP, handshaking and WebSocket
/// together); more are answered 503.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// Default offers a client may send per second (a burst of as many is
/// allowed); offers over the rate are answered with a rejection.
pub const DEFAULT_MAX_OFFERS_PER_SECOND: u32 = 10;
/// Default ICE candidates a client may send per second; more are dropped.
pub const DEFAULT_MAX_CANDIDATES_PER_SECOND: u32 = 200;
/// Default userData updates a slave may make per second (a burst of as
/// many is allowed); faster ones wait, the latest replacing the others.
/// Each is a frame to every V2 client: 100 slaves at this rate and 1,000
/// clients are a million frames a second.
pub const DEFAULT_MAX_USER_DATA_UPDATES_PER_SECOND: u32 = 10;

/// Bytes read from a peer's socket at a time. Signalling frames are small, and
/// tungstenite zeroes this much of its read buffer before every read and keeps
/// it per connection: its 128 KiB default was most of the CPU of a broadcast
/// to 5,000 clients, and 1 KiB instead of 4 KiB took the master with 5,000
/// clients from 46 to 32 MB. 256 bytes hold a pong or a candidate, and take
/// another 0.75 kB off every idle client. Larger frames (offers, answers:
/// 1–4 kB of SDP, a few per peer) still arrive, in several reads.
const READ_CHUNK: usize = 256;

/// Smallest `max_http_header_size` (hyper refuses smaller buffers).
pub const MIN_HTTP_HEADER_SIZE: usize = 8192;
/// Shortest `heartbeat_interval`.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10);

/// Where [`MasterConfigBuilder::metrics`] serves the metrics.
pub const METRICS_PATH: &str = "/enslavism/metrics";
/// Where [`MasterConfigBuilder::status`] serves the status page.
pub const STATUS_PATH: &str = "/enslavism/status";
/// Where [`MasterConfigBuilder::status`] serves the figures the status page shows, as JSON.
pub const STATUS_JSON_PATH: &str = "/enslavism/status.json";

/// Limits and timeouts of a master. `MasterConfig::default()` holds the
/// documented defaults; [`MasterConfig::builder`] changes them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MasterConfig {
    pub(crate) max_message_size: usize,
    pub(crate) outbound_queue_length: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) auth_timeout: Duration,
    pub(crate) max_http_header_size: usize,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_user_data_size: usize,
    pub(crate) max_offers_per_second: u32,
    pub(crate) max_candidates_per_second: u32,
    pub(crate) max_user_data_updates_per_second: u32,
    pub(crate) tls: Option<TlsIdentity>,
    pub(crate) metrics: bool,
    pub(crate) status: bool,
    pub(crate) cluster: Option<ClusterConfig>,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            outbound_queue_length: DEFAULT_OUTBOUND_QUEUE_LENGTH,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            max_http_header_size: DEFAULT_MAX_HTTP_HEADER_SIZE,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_user_data_size: crate::proto::MAX_USER_DATA_LEN,
            max_offers_per_second: DEFAULT_MAX_OFFERS_PER_SECOND,
            max_candidates_per_second: DEFAULT_MAX_CANDIDATES_PER_SECOND,
            max_user_data_updates_per_second: DEFAULT_MAX_USER_DATA_UPDATES_PER_SECOND,
            tls: None,
            metrics: false,
            status: false,
            cluster: None,
        }
    }
}

impl MasterConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> MasterConfigBuilder {
        MasterConfigBuilder { config: MasterConfig::default() }
    }

    pub(crate) fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_CHUNK)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

/// Makes a [`MasterConfig`]; every value is checked by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct MasterConfigBuilder {
    config: MasterConfig,
}

impl MasterConfigBuilder {
    /// Largest WebSocket message (and frame) a peer may send; larger ones
    /// close the connection with code 1009 (default 256 KiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Frames waiting for one peer (queued, not yet taken by its
    /// connection) before it is disconnected as too slow (default 1,024).
    pub fn outbound_queue_length(mut self, frames: usize) -> Self {
        self.config.outbound_queue_length = frames;
        self
    }

    /// Time a connection has to send its HTTP request headers (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Time the application has to decide a handshake; then it is refused
    /// (default 10 s).
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.config.auth_timeout = timeout;
        self
    }

    /// Largest HTTP request head read by the master's own server (default
    /// 64 KiB, at least [`MIN_HTTP_HEADER_SIZE`]).
    pub fn max_http_header_size(mut self, bytes: usize) -> Self {
        self.config.max_http_header_size = bytes;
        self
    }

    /// How often the master pings a quiet peer (default 5 s, at least
    /// [`MIN_HEARTBEAT_INTERVAL`]).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// A peer silent this long (no frame, no pong) is dropped: it vanished
    /// without closing (crashed host, cut network). Default 10 s; longer
    /// than the interval.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// Most connections at once (HTTP requests, handshakes and WebSockets of
    /// both kinds); more are answered HTTP 503 and closed (default 50,000).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = connections;
        self
    }

    /// Largest userData (JSON bytes) a slave may register, from 1 to 65,535
    /// (what the protocol carries, the default); a slave over it is closed
    /// with 1009.
    pub fn max_user_data_size(mut self, bytes: usize) -> Self {
        self.config.max_user_data_size = bytes;
        self
    }

    /// Offers one client may send per second (a burst of as many is
    /// allowed); over it, the client gets a rejection from that slave.
    /// 0: no limit (default 10).
    pub fn max_offers_per_second(mut self, offers: u32) -> Self {
        self.config.max_offers_per_second = offers;
        self
    }

    /// ICE candidates one client may send per second; over it they are
    /// dropped. 0: no limit (default 200).
    pub fn max_candidates_per_second(mut self, candidates: u32) -> Self {
        self.config.max_candidates_per_second = candidates;
        self
    }

    /// userData updates one slave may make per second (a burst of as many
    /// is allowed). Faster ones are not refused: the latest waits until the
    /// rate allows it, replacing any that waited before it, and the slave
    /// hears of it then. 0: no limit (default 10).
    pub fn max_user_data_updates_per_second(mut self, updates: u32) -> Self {
        self.config.max_user_data_updates_per_second = updates;
        self
    }

    /// The certificate [`Master::bind`](super::Master::bind)'s server
    /// presents: with one, it speaks HTTPS and WSS only. Swapped while
    /// running by [`Master::set_tls`](super::Master::set_tls).
    pub fn tls(mut self, identity: TlsIdentity) -> Self {
        self.config.tls = Some(identity);
        self
    }

    /// Serves the master's metrics at [`METRICS_PATH`] (OpenMetrics text,
    /// see [`Master::metrics`](super::Master::metrics)), to requests that
    /// [`MasterHooks::authorize_monitoring`](super::MasterHooks::authorize_monitoring)
    /// lets through. Off by default: the path is then a 404.
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.metrics = on;
        self
    }

    /// Serves a status page at [`STATUS_PATH`]: the live slave list and the
    /// master's figures, updating by itself (it reads [`STATUS_JSON_PATH`]
    /// every second and lists slaves as a client does), to requests that
    /// [`MasterHooks::authorize_monitoring`](super::MasterHooks::authorize_monitoring)
    /// lets through. Off by default: the paths are then a 404.
    pub fn status(mut self, on: bool) -> Self {
        self.config.status = on;
        self
    }

    /// Shares the slave list and the signalling with the other masters of a
    /// cluster, through Redis (see [`ClusterConfig`]; default: none, the
    /// master stands alone).
    pub fn cluster(mut self, cluster: ClusterConfig) -> Self {
        self.config.cluster = Some(cluster);
        self
    }

    /// Checks every setting and returns the configuration.
    pub fn build(self) -> Result<MasterConfig, ConfigError> {
        let c = self.config;
        let max = u64::from(u32::MAX);
        config::in_range("max_message_size", c.max_message_size as u64, 1, max, Unit::Bytes)?;
        config::in_range("outbound_queue_length", c.outbound_queue_length as u64, 1, max, Unit::Count)?;
        config::in_range("max_http_header_size", c.max_http_header_size as u64, MIN_HTTP_HEADER_SIZE as u64, max, Unit::Bytes)?;
        config::in_range("max_connections", c.max_connections as u64, 1, max, Unit::Count)?;
        let user_data_max = crate::proto::MAX_USER_DATA_LEN as u64;
        config::in_range("max_user_data_size", c.max_user_data_size as u64, 1, user_data_max, Unit::Bytes)?;
        let one_ms = Duration::from_millis(1);
        config::duration("handshake_timeout", c.handshake_timeout, one_ms)?;
        config::duration("auth_timeout", c.auth_timeout, one_ms)?;
        config::duration("heartbeat_interval", c.heartbeat_interval, MIN_HEARTBEAT_INTERVAL)?;
        config::duration("heartbeat_timeout", c.heartbeat_timeout, one_ms)?;
        config::heartbeat(c.heartbeat_interval, c.heartbeat_timeout)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_every_setting_once() {
        assert!(MasterConfig::builder().build().is_ok());
        let e = MasterConfig::builder().max_user_data_size(65_536).build().unwrap_err();
        assert_eq!(e.to_string(), "max_user_data_size must be from 1 to 65535 bytes; got 65536");
        assert!(MasterConfig::builder().max_connections(0).build().is_err());
        assert!(MasterConfig::builder().heartbeat_interval(Duration::from_millis(5)).build().is_err());
        assert!(MasterConfig::builder().max_offers_per_second(0).build().is_ok());
    }
}
