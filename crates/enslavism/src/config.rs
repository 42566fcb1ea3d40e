//! What the crate's configurations ([`crate::master::MasterConfig`],
//! [`crate::slave::SlaveConfig`], [`crate::client::MasterConnectionBuilder`])
//! check when they are built: one error type that names the setting, so that
//! every front end (the Node binding among them) reports a bad value the same
//! way, and the checks live in one place.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// A setting that cannot be used. The setting is named as its builder
/// method is (`max_message_size`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A number outside its range (both ends included).
    #[error("{setting} must be from {min} to {max}{unit}; got {value}")]
    OutOfRange {
        /// The setting.
        setting: &'static str,
        /// The value given, in `unit`.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
        /// What the numbers count.
        unit: Unit,
    },
    /// A value that is not a number out of range, and why it cannot be used.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// What the numbers of a [`ConfigError::OutOfRange`] count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// A plain count (connections, frames, a port number).
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds (the setting is a duration).
    Milliseconds,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Count => "",
            Unit::Bytes => " bytes",
            Unit::Milliseconds => " ms",
        })
    }
}

/// The longest duration any setting takes: 2³² − 1 ms (49.7 days). Longer
/// ones would overflow deadlines (`Instant + Duration` panics), and JS
/// passes milliseconds as 32-bit integers anyway.
pub const MAX_DURATION: Duration = Duration::from_millis(u32::MAX as u64);

/// Checks that `value` is within `min..=max`.
pub(crate) fn in_range(setting: &'static str, value: u64, min: u64, max: u64, unit: Unit) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { setting, value, min, max, unit })
    }
}

/// Checks that a duration is at least `min` and at most [`MAX_DURATION`].
pub(crate) fn duration(setting: &'static str, value: Duration, min: Duration) -> Result<(), ConfigError> {
    if value >= min && value <= MAX_DURATION {
        return Ok(());
    }
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Err(ConfigError::OutOfRange { setting, value: ms(value), min: ms(min), max: ms(MAX_DURATION), unit: Unit::Milliseconds })
}

/// Checks that a heartbeat's timeout leaves room for at least one ping.
pub(crate) fn heartbeat(interval: Duration, timeout: Duration) -> Result<(), ConfigError> {
    if timeout > interval {
        return Ok(());
    }
    Err(invalid(
        "heartbeat_timeout",
        format!("must be longer than heartbeat_interval ({} ms); got {} ms", interval.as_millis(), timeout.as_millis()),
    ))
}

/// A [`ConfigError::Invalid`].
pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_setting_and_the_range() {
        let e = in_range("max_message_size", 100, 1024, 262_144, Unit::Bytes).unwrap_err();
        assert_eq!(e.to_string(), "max_message_size must be from 1024 to 262144 bytes; got 100");
        let e = duration("offer_timeout", Duration::ZERO, Duration::from_millis(1)).unwrap_err();
        assert_eq!(e.to_string(), "offer_timeout must be from 1 to 4294967295 ms; got 0");
        assert!(duration("offer_timeout", Duration::from_secs(10), Duration::from_millis(1)).is_ok());
        assert!(duration("offer_timeout", Duration::MAX, Duration::from_millis(1)).is_err());
        assert!(heartbeat(Duration::from_secs(5), Duration::from_secs(5)).is_err());
    }
}
