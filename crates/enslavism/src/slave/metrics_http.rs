//! The slave's own metrics listener (`metrics_port`): `GET /metrics` answers
//! [`super::Slave::metrics`] with the OpenMetrics media type; any other path
//! is 404, any other method 405. Plain HTTP/1.1 (hyper), for a scraper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::config::DEFAULT_METRICS_HOST;
use super::{SlaveConfig, SlaveShared};

/// Time a scraper has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once. A scraper needs
/// one; the listener is open to every interface by default, and idle
/// connections must not pile up tasks without bound.
const MAX_CONNECTIONS: usize = 32;

/// Binds the listener `config` asks for, if any (synchronously, so that a
/// port in use fails the slave's start).
pub(crate) fn bind(config: &SlaveConfig) -> std::io::Result<Option<std::net::TcpListener>> {
    let Some(port) = config.metrics_port else { return Ok(None) };
    let listener = std::net::TcpListener::bind(SocketAddr::new(config.metrics_host.unwrap_or(DEFAULT_METRICS_HOST), port))?;
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// Serves scrapes until the slave closes; the port is then free.
pub(crate) async fn serve(shared: Arc<SlaveShared>, listener: std::net::TcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return tracing::error!("the metrics listener failed: {e}"),
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: try again shortly rather than spin.
                    tracing::debug!("metrics listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics listener: {MAX_CONNECTIONS} connections open, one more closed");
            continue;
        };
        let conn_shared = shared.clone();
        shared.tasks.spawn(async move {
            let _slot = slot;
            let service_shared = conn_shared.clone();
            let service = service_fn(move |req| std::future::ready(answer(&service_shared, &req)));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => if let Err(e) = result {
                    tracing::debug!("metrics connection ended: {e}");
                },
                _ = conn_shared.shutdown.cancelled() => {}
            }
        });
    }
}

fn answer(shared: &SlaveShared, req: &Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if req.uri().path() != "/metrics" {
        Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::from_static(b"404 Not found: try /metrics\n")))
    } else if !matches!(*req.method(), Method::GET | Method::HEAD) {
        Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET, HEAD")
            .body(Full::new(Bytes::from_static(b"405 Method not allowed\n")))
    } else {
        let text = shared.metrics_text();
        let body = if req.method() == Method::HEAD { Bytes::new() } else { Bytes::from(text) };
        Response::builder()
            .header(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(body))
    };
    Ok(response.unwrap_or_default())
}
