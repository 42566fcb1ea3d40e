//! The master's monitoring paths, where they are turned on: the metrics
//! ([`METRICS_PATH`]), the status page ([`STATUS_PATH`]) and the figures it
//! reads ([`STATUS_JSON_PATH`]). The master's own server asks
//! [`MasterHooks::authorize_monitoring`](super::MasterHooks::authorize_monitoring)
//! first; an attached server (the Node binding) asks its own hook and takes
//! the answer from [`Master::monitoring_page`](super::Master::monitoring_page).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::Full;

use super::{MonitoringRequest, Shared, METRICS_PATH, STATUS_JSON_PATH, STATUS_PATH};

/// The status page: the live slave list (through the browser client) and the
/// master's figures and rates (from [`STATUS_JSON_PATH`], every second).
const STATUS_PAGE: &str = include_str!("status.html");

/// What a monitoring path answers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MonitoringPage {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: String,
}

impl Shared {
    /// True when `path` is a monitoring path that is turned on (nothing is
    /// computed: asked before anyone is authorised).
    pub(crate) fn monitoring_enabled(&self, path: &str) -> bool {
        match path {
            METRICS_PATH => self.config.metrics,
            STATUS_PATH | STATUS_JSON_PATH => self.config.status,
            _ => false,
        }
    }

    /// The answer to `path` when it is a monitoring path that is turned on.
    pub(crate) fn monitoring_page(&self, path: &str) -> Option<MonitoringPage> {
        let (content_type, body) = match path {
            METRICS_PATH if self.config.metrics => (crate::metrics::CONTENT_TYPE, self.metrics()),
            STATUS_PATH if self.config.status => ("text/html; charset=utf-8", STATUS_PAGE.to_owned()),
            STATUS_JSON_PATH if self.config.status => ("application/json; charset=utf-8", self.stats().to_json()),
            _ => return None,
        };
        Some(MonitoringPage { content_type, body })
    }
}

/// The own server's answer to `path`, when it is a monitoring path that is
/// turned on: the page, or 403 when the application refuses (or takes longer
/// than the auth timeout to decide).
pub(crate) async fn respond(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    remote_addr: SocketAddr,
) -> Option<Response<Full<Bytes>>> {
    // A path that is off stays a plain 404, and nobody is asked.
    if !shared.monitoring_enabled(path) {
        return None;
    }
    let request = MonitoringRequest { path: path.to_owned(), remote_addr, headers: headers.clone() };
    let decided = tokio::time::timeout(shared.config.auth_timeout, shared.hooks.authorize_monitoring(request)).await;
    let response = match decided {
        Ok(Ok(())) => {
            let page = shared.monitoring_page(path)?;
            Response::builder()
                .header(header::CONTENT_TYPE, page.content_type)
                .header(header::CACHE_CONTROL, "no-store")
                .body(Full::new(Bytes::from(page.body)))
        }
        _ => {
            tracing::debug!(%remote_addr, path, "monitoring request refused");
            Response::builder().status(StatusCode::FORBIDDEN).body(Full::new(Bytes::from_static(b"403\nForbidden")))
        }
    };
    Some(response.unwrap_or_default())
}
