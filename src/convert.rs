//! Options as JS passes them, converted for the engine (shared by the classes).

use std::net::IpAddr;
use std::time::Duration;

use enslavism::config::{ConfigError, Unit};
use enslavism::slave::IceServer;
use enslavism::tls::{trust_anchors_from_pem, CertificateDer};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::{codes, js_error};

/// A STUN/TURN server, as `RTCIceServer`.
#[napi(object)]
pub struct NativeIceServer {
    /// `stun:`/`turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
}

/// The ICE servers as the engine takes them.
pub(crate) fn ice_servers(servers: Option<Vec<NativeIceServer>>) -> Vec<IceServer> {
    servers
        .unwrap_or_default()
        .into_iter()
        .map(|s| IceServer {
            urls: s.urls,
            username: s.username.unwrap_or_default(),
            credential: s.credential.unwrap_or_default(),
        })
        .collect()
}

/// A numeric option: the wrapper passes non-negative safe integers only;
/// anything else becomes a value every range refuses.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A size option, in bytes or items (the engine checks its range).
pub(crate) fn size(n: i64) -> usize {
    usize::try_from(count(n)).unwrap_or(usize::MAX)
}

/// A duration option, in milliseconds (the engine checks its range).
pub(crate) fn millis(ms: i64) -> Duration {
    Duration::from_millis(count(ms))
}

/// A builder method taking one value.
pub(crate) type Setter<B, T> = fn(B, T) -> B;

/// Calls the setter of each option JS set, with its value converted by `convert`.
pub(crate) fn set_each<B, T>(builder: B, options: &[(Option<i64>, Setter<B, T>)], convert: fn(i64) -> T) -> B {
    options.iter().fold(builder, |b, &(value, set)| match value {
        Some(v) => set(b, convert(v)),
        None => b,
    })
}

/// An option the engine takes as a `u16` or `u32`: a value that does not fit
/// the type is out of its range, reported as the engine reports others.
pub(crate) fn narrow<T: TryFrom<u64> + Into<u64> + Bounded>(setting: &'static str, n: i64) -> Result<T, ConfigError> {
    let value = count(n);
    T::try_from(value).map_err(|_| ConfigError::OutOfRange {
        setting,
        value,
        min: T::MIN_VALUE.into(),
        max: T::MAX_VALUE.into(),
        unit: Unit::Count,
    })
}

/// The bounds of the integer types [`narrow`] converts to.
pub(crate) trait Bounded: Sized {
    const MIN_VALUE: Self;
    const MAX_VALUE: Self;
}
impl Bounded for u16 {
    const MIN_VALUE: Self = u16::MIN;
    const MAX_VALUE: Self = u16::MAX;
}
impl Bounded for u32 {
    const MIN_VALUE: Self = u32::MIN;
    const MAX_VALUE: Self = u32::MAX;
}

/// A setting the engine refused, as the JS error the wrapper throws: the
/// option is named in JS (`options.maxMessageSize`); a number out of range
/// is `ERR_OUT_OF_RANGE` (a RangeError), anything else `ERR_INVALID_ARG_VALUE`.
pub(crate) fn config_error(e: ConfigError) -> napi::Error<String> {
    match e {
        ConfigError::OutOfRange { setting, value, min, max, unit } => {
            let unit = match unit {
                Unit::Bytes => " (bytes)",
                Unit::Milliseconds => " (ms)",
                _ => "",
            };
            let option = js_option(setting);
            js_error(
                codes::OUT_OF_RANGE,
                format!("{option} must be an integer from {min} to {max}{unit}; received number {value}"),
            )
        }
        ConfigError::Invalid { setting, reason } => js_error(codes::INVALID_ARG, format!("{}: {reason}", js_option(setting))),
        other => js_error(codes::INVALID_ARG, other.to_string()),
    }
}

/// `options.camelCase` for the engine's `snake_case` setting.
fn js_option(setting: &str) -> String {
    let mut out = String::from("options.");
    let mut upper = false;
    for c in setting.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The trusted CAs of the options: `ca`, then the `NODE_EXTRA_CA_CERTS` file.
pub(crate) fn trusted_cas(
    ca: Option<&[Buffer]>,
    extra_ca_certs: Option<&Buffer>,
) -> napi::Result<Vec<CertificateDer<'static>>, String> {
    let given = ca.into_iter().flatten().map(|pem| (&pem[..], "ca option"));
    let extra = extra_ca_certs.into_iter().map(|pem| (&pem[..], "NODE_EXTRA_CA_CERTS file"));
    let mut certs = Vec::new();
    for (pem, what) in given.chain(extra) {
        let parsed = trust_anchors_from_pem(pem, what).map_err(|e| js_error(codes::CERTIFICATE, e.to_string()))?;
        certs.extend(parsed);
    }
    Ok(certs)
}

/// IP addresses from strings; `option` names the option in the error.
pub(crate) fn ip_list(list: &[String], option: &str) -> napi::Result<Vec<IpAddr>, String> {
    list.iter()
        .map(|a| {
            a.parse::<IpAddr>().map_err(|_| js_error(codes::INVALID_ARG, format!("options.{option}: {a:?} is not an IP address")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_are_named_as_js_options() {
        assert_eq!(super::js_option("max_user_data_size"), "options.maxUserDataSize");
        assert_eq!(super::js_option("reconnect"), "options.reconnect");
    }
}
