//! Dialling a master: the WebSocket a slave or a native client opens to it,
//! with authData as cookies and rustls for `wss://`. Both links use it, so
//! that they refuse bad URLs, certificates and refusals in the same words.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, COOKIE, SEC_WEBSOCKET_PROTOCOL};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::proto::{ProtocolVersion, OFFERED_SUBPROTOCOLS};

/// An open WebSocket to a master.
pub(crate) type MasterSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a master could not be dialled.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DialError {
    /// The master URL is not a `ws://` or `wss://` URL.
    #[error("invalid master URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The master refused the WebSocket handshake (e.g. 401 from an auth listener).
    #[error("the master refused the connection with HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The response body (the rejection reason).
        body: String,
    },
    /// The TLS handshake with a `wss://` master failed: its certificate is
    /// not trusted, expired or for another name, or it does not speak TLS.
    #[error("TLS with the master at {url} failed: {source}{}", crate::tls::hint(.source))]
    Tls {
        /// The URL tried.
        url: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The master could not be reached.
    #[error("cannot connect to the master at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// The cookie header carrying authData, encoded as 0.9.0 did (`cookie.serialize`).
fn cookie_header(auth: &[(String, String)]) -> String {
    auth.iter()
        .map(|(name, value)| cookie::Cookie::new(name.as_str(), value.as_str()).encoded().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The URL dialled for `master_url` and `path`, and its handshake request;
/// [`DialError::BadUrl`] if `master_url` is not a `ws://` or `wss://` URL.
fn request_for(master_url: &str, path: &str) -> Result<(String, http::Request<()>), DialError> {
    let bad_url = |reason: String| DialError::BadUrl { url: master_url.to_owned(), reason };
    if !(master_url.starts_with("ws://") || master_url.starts_with("wss://")) {
        return Err(bad_url("it must start with ws:// or wss://".into()));
    }
    let url = format!("{}{path}", master_url.trim_end_matches('/'));
    let request = url.as_str().into_client_request().map_err(|e| bad_url(e.to_string()))?;
    Ok((url, request))
}

/// Checks that `master_url` can be dialled with `path` appended (what
/// [`open`] would refuse as [`DialError::BadUrl`]), without dialling.
pub(crate) fn check_url(master_url: &str, path: &str) -> Result<(), DialError> {
    request_for(master_url, path).map(drop)
}

/// Opens the WebSocket to `master_url + path` (`/enslavism/slaves` or
/// `/enslavism/clients`); a `wss://` URL is verified with `tls`. Offers
/// [`OFFERED_SUBPROTOCOLS`] and returns the version the master agreed to
/// (a 0.9.0 master agrees to V1, the first offered).
pub(crate) async fn open(
    master_url: &str,
    path: &str,
    auth: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(MasterSocket, ProtocolVersion), DialError> {
    let bad_url = |reason: String| DialError::BadUrl { url: master_url.to_owned(), reason };
    let (url, mut request) = request_for(master_url, path)?;
    if !auth.is_empty() {
        let value = HeaderValue::from_str(&cookie_header(auth))
            .map_err(|e| bad_url(format!("authData cannot be sent as cookies: {e}")))?;
        request.headers_mut().insert(COOKIE, value);
    }
    request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(OFFERED_SUBPROTOCOLS));
    let unreachable = |reason: String| DialError::Unreachable { url: url.clone(), reason };
    let connector = Some(Connector::Rustls(tls.clone()));
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(unreachable(format!("no WebSocket handshake within {timeout:?}"))),
        Ok(Ok((ws, response))) => {
            let agreed = response.headers().get(SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
            Ok((ws, ProtocolVersion::from_subprotocol(agreed)))
        }
        Ok(Err(WsError::Io(e))) => match crate::tls::rustls_error(&e) {
            Some(source) => Err(DialError::Tls { url, source: source.clone() }),
            None => Err(unreachable(e.to_string())),
        },
        Ok(Err(WsError::Http(response))) => Err(DialError::Refused {
            status: response.status().as_u16(),
            body: response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default(),
        }),
        Ok(Err(WsError::Url(e))) => Err(bad_url(e.to_string())),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
    }
}

/// What a frame read from the master means to a link.
pub(crate) enum Inbound {
    /// A binary frame: a protocol message.
    Frame(tokio_tungstenite::tungstenite::Bytes),
    /// Nothing for the link (a pong, a text frame, a ping answered).
    Nothing,
    /// The connection ended, with this close code and reason.
    Ended(u16, String),
}

/// Takes one read from the master: answers pings (tungstenite queues the
/// pong; flushing sends it) and turns closes and errors into [`Inbound::Ended`].
pub(crate) async fn inbound(
    ws: &mut MasterSocket,
    read: Option<Result<tokio_tungstenite::tungstenite::Message, WsError>>,
    limit: Duration,
) -> Inbound {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    match read {
        Some(Ok(WsMessage::Binary(data))) => Inbound::Frame(data),
        Some(Ok(WsMessage::Close(frame))) => {
            let _ = within(CLOSE_WRITE_LIMIT, ws.flush()).await;
            let (code, reason) = frame.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string()));
            Inbound::Ended(code, reason)
        }
        Some(Ok(WsMessage::Ping(_))) => match within(limit, ws.flush()).await {
            Ok(()) => Inbound::Nothing,
            Err(reason) => Inbound::Ended(1006, reason),
        },
        Some(Ok(_)) => Inbound::Nothing,
        Some(Err(e)) => Inbound::Ended(1006, e.to_string()),
        None => Inbound::Ended(1006, String::new()),
    }
}

/// First wait before reconnecting to a master; it doubles up to the
/// link's longest delay (as the browser bundle does).
pub(crate) const RECONNECT_INITIAL_DELAY: Duration = Duration::from_millis(250);

/// How long a goodbye to the master may take to write.
pub(crate) const CLOSE_WRITE_LIMIT: Duration = Duration::from_millis(500);

/// Runs one write to the master, giving up after `limit`: on a half-open link,
/// or a master that stopped reading, whose send buffer is full, a write would
/// otherwise wait forever and the heartbeat with it.
pub(crate) async fn within(limit: Duration, write: impl std::future::Future<Output = Result<(), WsError>>) -> Result<(), String> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("heartbeat timeout (send stalled)".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    use crate::proto::ProtocolVersion;

    /// A master that agrees to the subprotocol `choose` picks from the offer.
    async fn master(choose: fn(&str) -> &str) -> (String, tokio::task::JoinHandle<WebSocketStream<TcpStream>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            // tungstenite's callback type has the large error, not ours.
            #[allow(clippy::result_large_err)]
            let agree = move |request: &Request, mut response: Response| {
                let offered = request.headers()[SEC_WEBSOCKET_PROTOCOL].to_str().unwrap();
                response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(choose(offered)).unwrap());
                Ok(response)
            };
            tokio_tungstenite::accept_hdr_async(stream, agree).await.unwrap()
        });
        (url, task)
    }

    /// With Nagle on, a frame written while the previous one waited for the
    /// master's delayed ACK sat up to 40 ms: 10 setups at once had a p95 40 ms
    /// above their p50.
    #[tokio::test]
    async fn the_link_to_the_master_sends_small_frames_at_once() {
        let (url, master) = master(|_| "enslavism.2").await;
        let tls = crate::tls::client_config(&[]).unwrap();
        let (ws, protocol) = super::open(&url, "/enslavism/slaves", &[], &tls, Duration::from_secs(5)).await.unwrap();
        assert_eq!(protocol, ProtocolVersion::V2);
        let MaybeTlsStream::Plain(tcp) = ws.get_ref() else { panic!("a ws:// link is plain TCP") };
        assert!(tcp.nodelay().unwrap(), "Nagle's algorithm is on for the master link");
        drop(tokio::time::timeout(Duration::from_secs(5), master).await.unwrap().unwrap());
    }

    /// 0.9.0's master (`ws` 7) agrees to the first subprotocol offered.
    #[tokio::test]
    async fn a_master_that_agrees_to_the_first_offered_speaks_v1() {
        let (url, master) = master(|offered| offered.split(',').next().unwrap().trim()).await;
        let tls = crate::tls::client_config(&[]).unwrap();
        let (_ws, protocol) = super::open(&url, "/enslavism/slaves", &[], &tls, Duration::from_secs(5)).await.unwrap();
        assert_eq!(protocol, ProtocolVersion::V1, "0.9.0's messages only");
        drop(tokio::time::timeout(Duration::from_secs(5), master).await.unwrap().unwrap());
    }
}
