//! Options as JS passes them, converted for the engine (shared by the classes).

use std::net::IpAddr;
use std::time::Duration;

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

/// Milliseconds from JS, or the default.
pub(crate) fn millis(ms: Option<u32>, default: Duration) -> Duration {
    ms.map_or(default, |ms| Duration::from_millis(u64::from(ms)))
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
        .map(|a| a.parse::<IpAddr>().map_err(|_| js_error(codes::INVALID_ARG, format!("{option}: {a:?} is not an IP address"))))
        .collect()
}
