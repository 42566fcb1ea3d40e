//! The master's own HTTP server (hyper): the browser bundle and its source
//! map ([`crate::assets`]), 404 for the rest, and WebSocket upgrades on the
//! two enslavism paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::peer::run_peer;
use super::stats::Refusal;
use super::{handshake, monitoring};
use super::{ConnectionSlot, Shared};
use crate::assets;

/// Accepts connections until the master closes; then the listener is dropped
/// and the port is free.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote_addr)) => {
                    let _ = stream.set_nodelay(true);
                    match shared.connection_slot() {
                        Some(slot) if shared.tls.is_some() => shared.tasks.spawn(serve_tls(shared.clone(), stream, remote_addr, slot)),
                        Some(slot) => shared.tasks.spawn(serve_http(shared.clone(), stream, remote_addr, Arc::new(slot))),
                        None => shared.tasks.spawn(refuse_over_limit(shared.clone(), stream, remote_addr)),
                    };
                }
                Err(e) => {
                    // Typically out of file descriptors: wait instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Answers a connection over `max_connections` with 503 and closes it.
pub(crate) async fn refuse_over_limit<S>(shared: Arc<Shared>, mut stream: S, remote_addr: SocketAddr)
where
    S: AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let limit = shared.config.max_connections;
    // Debug, not warn: under a flood this would be one line per connection.
    tracing::debug!(%remote_addr, limit, "connection refused: too many connections");
    shared.traffic.refused(Refusal::OverLimit);
    let outcome = handshake::refuse(StatusCode::SERVICE_UNAVAILABLE, &format!("too many connections (the limit is {limit})"));
    let response = handshake::serialize_response(&outcome.response);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// How long a refusal may take to write before the socket is just dropped.
const REFUSAL_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves a connection to a TLS master: the handshake (within the
/// handshake timeout), then HTTP over it. A client that speaks plain HTTP is
/// told to use `wss://` / `https://` instead of being cut off unanswered.
async fn serve_tls(shared: Arc<Shared>, stream: TcpStream, remote_addr: SocketAddr, slot: ConnectionSlot) {
    let Some(tls) = shared.tls.as_ref() else { return };
    let limit = shared.config.handshake_timeout;
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(1) => return Err(Some(stream)),
            _ => return Err(None),
        }
        tls.acceptor().accept(stream).await.map_err(|e| {
            tracing::debug!(%remote_addr, "TLS handshake failed: {e}");
            None
        })
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(limit, handshake) => outcome,
        _ = shared.shutdown.cancelled() => return,
    };
    match outcome {
        Ok(Ok(tls_stream)) => serve_http(shared.clone(), tls_stream, remote_addr, Arc::new(slot)).await,
        Ok(Err(Some(plain))) => refuse_plain(plain, remote_addr).await,
        Ok(Err(None)) => {}
        Err(_) => tracing::debug!(%remote_addr, "no TLS handshake within {limit:?}"),
    }
}

/// Answers a plain-HTTP request made to a TLS master, in plain HTTP.
async fn refuse_plain(mut stream: TcpStream, remote_addr: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    tracing::debug!(%remote_addr, "plain HTTP on the TLS port refused");
    let outcome =
        handshake::refuse(StatusCode::BAD_REQUEST, "This master speaks TLS on this port: use wss:// or https:// to reach it");
    let response = handshake::serialize_response(&outcome.response);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        // Read the request first: closing with it unread would reset the
        // connection, and the client might lose the answer.
        let mut request = [0u8; 4096];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_http<S>(shared: Arc<Shared>, stream: S, remote_addr: SocketAddr, slot: Arc<ConnectionSlot>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_shared = shared.clone();
    // The slot stays taken while the connection or the WebSocket it became lives.
    let service = service_fn(move |req| handle_request(service_shared.clone(), req, remote_addr, slot.clone()));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.handshake_timeout)
        .max_buf_size(shared.config.max_http_header_size)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(%remote_addr, "HTTP connection ended: {e}");
            }
        }
        _ = shared.shutdown.cancelled() => {}
    }
}

async fn handle_request(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    remote_addr: SocketAddr,
    slot: Arc<ConnectionSlot>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if handshake::is_websocket_upgrade(req.headers()) {
        let outcome =
            handshake::negotiate(req.uri().path(), req.headers(), remote_addr, &*shared.hooks, shared.config.auth_timeout).await;
        let Some((kind, protocol)) = outcome.upgraded else {
            shared.traffic.refused(Refusal::from_status(outcome.response.status()));
            return Ok(outcome.response.map(Full::new));
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let peer_shared = shared.clone();
        shared.tasks.spawn(async move {
            // Not `match on_upgrade.await { Ok(..) => .. }`: the matched
            // value's room would stay in the task for the peer's life.
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => return tracing::debug!(%remote_addr, "upgrade failed: {e}"),
            };
            let config = peer_shared.config.websocket_config();
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
            run_peer(peer_shared, ws, kind, protocol, remote_addr, slot).await;
        });
        return Ok(outcome.response.map(Full::new));
    }

    if matches!(*req.method(), Method::GET | Method::HEAD) {
        if let Some(response) = monitoring::respond(&shared, req.uri().path(), req.headers(), remote_addr).await {
            return Ok(response);
        }
    }
    let asset = assets::find(req.uri().path()).filter(|_| matches!(*req.method(), Method::GET | Method::HEAD));
    let response = if let Some(asset) = asset {
        let fresh = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| asset.not_modified(v));
        let builder = Response::builder().header(header::ETAG, asset.etag).header(header::CACHE_CONTROL, assets::CACHE_CONTROL);
        if fresh {
            builder.status(StatusCode::NOT_MODIFIED).body(Full::new(Bytes::new()))
        } else {
            builder.header(header::CONTENT_TYPE, asset.content_type).body(Full::new(Bytes::from_static(asset.body.as_bytes())))
        }
    } else {
        Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::from_static(b"404\nNot found")))
    };
    Ok(response.unwrap_or_default())
}
