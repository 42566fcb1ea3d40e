//! How a master joins a cluster: [`ClusterConfig`], made by
//! [`ClusterConfig::builder`] and checked once, when built.

use std::time::Duration;

use crate::config::{self, ConfigError};

/// Default time a slave stays listed across the cluster after its master
/// last refreshed it: a master that dies takes its slaves off every list
/// within this.
pub const DEFAULT_SLAVE_TTL: Duration = Duration::from_secs(6);
/// Shortest slave TTL: the master refreshes four times per TTL, and a
/// Redis round trip must fit in a refresh period with room to spare.
pub const MIN_SLAVE_TTL: Duration = Duration::from_millis(400);
/// Default time an offer relayed to another master waits for its answer
/// before the browser is told the slave refused.
pub const DEFAULT_RELAY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time each Redis command (and the connection) has.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Default cluster name (the keys' namespace).
pub const DEFAULT_CLUSTER_NAME: &str = "default";

/// Where the cluster's shared state lives, and its timing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    pub(crate) redis_url: String,
    pub(crate) name: String,
    pub(crate) slave_ttl: Duration,
    pub(crate) relay_timeout: Duration,
    pub(crate) redis_timeout: Duration,
}

impl ClusterConfig {
    /// A cluster whose state lives on the Redis server at `redis_url`
    /// (`redis://[user:password@]host:port[/db]`).
    pub fn builder(redis_url: impl Into<String>) -> ClusterConfigBuilder {
        ClusterConfigBuilder {
            config: ClusterConfig {
                redis_url: redis_url.into(),
                name: DEFAULT_CLUSTER_NAME.to_owned(),
                slave_ttl: DEFAULT_SLAVE_TTL,
                relay_timeout: DEFAULT_RELAY_TIMEOUT,
                redis_timeout: DEFAULT_REDIS_TIMEOUT,
            },
        }
    }

    /// The Redis server's URL.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Makes a [`ClusterConfig`]; every value is checked by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct ClusterConfigBuilder {
    config: ClusterConfig,
}

impl ClusterConfigBuilder {
    /// The cluster's name (default `"default"`): masters with the same Redis
    /// and the same name share one lobby; other names on the same Redis are
    /// other lobbies. Letters, digits, `-`, `_` and `.`, at most 64.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// How long a slave stays listed across the cluster after its master
    /// last refreshed it (default 6 s, at least 400 ms). The master
    /// refreshes every quarter of it and checks other masters' slaves as
    /// often, so a master that dies leaves every list within this.
    pub fn slave_ttl(mut self, ttl: Duration) -> Self {
        self.config.slave_ttl = ttl;
        self
    }

    /// How long an offer relayed to another master's slave waits for its
    /// answer before the browser is told the slave refused (default 10 s).
    pub fn relay_timeout(mut self, timeout: Duration) -> Self {
        self.config.relay_timeout = timeout;
        self
    }

    /// How long connecting to Redis and each command may take before the
    /// connection counts as lost (default 2 s).
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.config.redis_timeout = timeout;
        self
    }

    /// Checks every setting and returns the configuration.
    pub fn build(self) -> Result<ClusterConfig, ConfigError> {
        let c = self.config;
        match redis::IntoConnectionInfo::into_connection_info(c.redis_url.as_str()) {
            Ok(info) if matches!(info.addr(), redis::ConnectionAddr::Tcp(..)) => {}
            Ok(_) => return Err(config::invalid("cluster.redis", format!("{:?} is not a redis:// URL", c.redis_url))),
            Err(e) => return Err(config::invalid("cluster.redis", format!("{:?} is not a Redis URL: {e}", c.redis_url))),
        }
        let name_ok = !c.name.is_empty()
            && c.name.len() <= 64
            && c.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(config::invalid(
                "cluster.name",
                format!("must be 1 to 64 letters, digits, '-', '_' or '.'; got {:?}", c.name),
            ));
        }
        config::duration("cluster.slave_ttl", c.slave_ttl, MIN_SLAVE_TTL)?;
        config::duration("cluster.relay_timeout", c.relay_timeout, Duration::from_millis(1))?;
        config::duration("cluster.redis_timeout", c.redis_timeout, Duration::from_millis(1))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_names_and_durations_are_checked() {
        assert!(ClusterConfig::builder("redis://127.0.0.1:6379").build().is_ok());
        assert!(ClusterConfig::builder("redis://127.0.0.1:6379/2").name("lobby-2.eu").build().is_ok());
        let e = ClusterConfig::builder("http://x").build().unwrap_err();
        assert!(e.to_string().starts_with("cluster.redis: \"http://x\" is not a Redis URL"), "{e}");
        let e = ClusterConfig::builder("redis://h").name("a b").build().unwrap_err();
        assert!(e.to_string().starts_with("cluster.name: must be"), "{e}");
        let e = ClusterConfig::builder("redis://h").slave_ttl(Duration::from_millis(10)).build().unwrap_err();
        assert_eq!(e.to_string(), "cluster.slave_ttl must be from 400 to 4294967295 ms; got 10");
    }
}
