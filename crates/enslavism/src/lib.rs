#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
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

/// `Content-Type` of [`CLIENT_SCRIPT`].
pub const CLIENT_SCRIPT_CONTENT_TYPE: &str = "application/javascript; charset=utf-8";

/// `Cache-Control` of [`CLIENT_SCRIPT`]: browsers keep it and revalidate it
/// on each use (answered 304 while unchanged), since an upgraded master
/// serves a new bundle under the same path.
pub const CLIENT_SCRIPT_CACHE_CONTROL: &str = "no-cache";

/// The strong `ETag` of [`CLIENT_SCRIPT`], from its bytes (FNV-1a, 64 bits):
/// every master serving the same bundle gives the same tag, so caches stay
/// valid behind a load balancer and across restarts.
pub fn client_script_etag() -> &'static str {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ETAG.get_or_init(|| {
        let hash = CLIENT_SCRIPT.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        format!("\"{hash:016x}\"")
    })
}

/// True when a request's `If-None-Match` value names [`client_script_etag`]
/// (weakly or not) or is `*`: the answer is 304 Not Modified.
pub fn client_script_not_modified(if_none_match: &str) -> bool {
    let etag = client_script_etag();
    if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

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
