//! What the master and the slave share for their Prometheus metrics: the
//! exposition's media type and its encoding (prometheus-client's OpenMetrics
//! text, which Prometheus scrapes natively).
//!
//! The counters behind the metrics are the ones `stats()` reads: counted in
//! the engine as the traffic goes (relaxed atomics), encoded only when asked.

use prometheus_client::registry::Registry;

/// `Content-Type` of a metrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` as an OpenMetrics text exposition (ending in `# EOF`).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing into a String cannot fail; an encoder error would be a
    // metric's own bug, and then the text so far is what there is.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!("cannot encode the metrics: {e}");
    }
    text
}
