//! The WebSocket handshake decision, shared by both ways a request arrives:
//! parsed by our own HTTP server, or parsed by a Node `http.Server` and handed
//! over with its socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::hooks::{AuthRequest, MasterHooks, Rejection};
use super::router::PeerKind;
use crate::proto::{ProtocolVersion, SUBPROTOCOL_V1, SUBPROTOCOL_V2};

/// The outcome of a handshake: the response to write and, when it is a 101,
/// the kind of peer that now speaks WebSocket and the protocol it speaks.
pub(crate) struct Outcome {
    pub response: Response<Bytes>,
    pub upgraded: Option<(PeerKind, ProtocolVersion)>,
}

/// True when the request asks for a WebSocket upgrade.
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, &header::UPGRADE, "websocket") && header_has_token(headers, &header::CONNECTION, "upgrade")
}

/// Decides a WebSocket handshake on `path`: checks the request, asks the
/// application (within `auth_timeout`), and builds the response.
pub(crate) async fn negotiate(
    path: &str,
    headers: &HeaderMap,
    remote_addr: SocketAddr,
    hooks: &dyn MasterHooks,
    auth_timeout: Duration,
) -> Outcome {
    let Some(kind) = PeerKind::from_path(path) else {
        return refuse(StatusCode::NOT_FOUND, "404\nNot found");
    };
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        let mut out = refuse(StatusCode::BAD_REQUEST, "Unsupported WebSocket version: 13 is required");
        out.response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return out;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|k| is_valid_key(k.as_bytes())) else {
        return refuse(StatusCode::BAD_REQUEST, "Missing or invalid Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());

    let request = AuthRequest { kind, cookies: parse_cookies(headers), remote_addr, headers: headers.clone() };
    let decision = match tokio::time::timeout(auth_timeout, hooks.authorize(request)).await {
        Ok(decision) => decision,
        Err(_) => Err(Rejection { reason: Some("authorization timed out".into()) }),
    };
    if let Err(Rejection { reason }) = decision {
        tracing::debug!(kind = kind.name(), %remote_addr, ?reason, "handshake refused by the application");
        return refuse(StatusCode::UNAUTHORIZED, reason.as_deref().unwrap_or("Unauthorized"));
    }

    let mut builder = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    let (subprotocol, protocol) = choose_protocol(headers);
    if let Some(subprotocol) = subprotocol {
        builder = builder.header(header::SEC_WEBSOCKET_PROTOCOL, subprotocol);
    }
    match builder.body(Bytes::new()) {
        Ok(response) => Outcome { response, upgraded: Some((kind, protocol)) },
        Err(_) => refuse(StatusCode::BAD_REQUEST, "Invalid Sec-WebSocket-Protocol"),
    }
}

/// A plain-text response that ends the connection.
pub(crate) fn refuse(status: StatusCode, body: &str) -> Outcome {
    let response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONNECTION, "close")
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap_or_default();
    Outcome { response, upgraded: None }
}

/// The request's cookies, percent-decoded; the first of two equal names wins.
pub(crate) fn parse_cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut cookies = HashMap::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for cookie in cookie::Cookie::split_parse_encoded(text).flatten() {
            cookies.entry(cookie.name().to_owned()).or_insert_with(|| cookie.value_trimmed().to_owned());
        }
    }
    cookies
}

/// Serialises a response head and body for a socket we write to ourselves
/// (a connection taken over from Node, where no HTTP server of ours runs).
pub(crate) fn serialize_response(response: &Response<Bytes>) -> Vec<u8> {
    let status = response.status();
    let mut out = Vec::with_capacity(256 + response.body().len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        out.extend_from_slice(format!("content-length: {}\r\n", response.body().len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(response.body());
    out
}

/// The subprotocol to agree to, and the protocol version it means:
/// [`SUBPROTOCOL_V2`] whenever it is offered, else [`SUBPROTOCOL_V1`].
/// Otherwise, like 0.9.0's `ws` server, the first one offered (an
/// application's own; the peer speaks V1), except an `enslavism.*` version
/// this master does not know: then none, and the peer decides whether V1 will do.
pub(crate) fn choose_protocol(headers: &HeaderMap) -> (Option<&str>, ProtocolVersion) {
    let offered = || {
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    };
    let Some(first) = offered().next() else { return (None, ProtocolVersion::V1) };
    for (known, version) in [(SUBPROTOCOL_V2, ProtocolVersion::V2), (SUBPROTOCOL_V1, ProtocolVersion::V1)] {
        if offered().any(|p| p == known) {
            return (Some(known), version);
        }
    }
    if first.starts_with("enslavism.") {
        tracing::debug!(subprotocol = first, "unknown enslavism protocol version offered: agreeing to none (0.9.0's)");
        return (None, ProtocolVersion::V1);
    }
    (Some(first), ProtocolVersion::V1)
}

fn header_has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A key is 16 random bytes in base64: 24 characters ending in "==".
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::hooks::NoHooks;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    const KEY: (&str, &str) = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    const VERSION: (&str, &str) = ("sec-websocket-version", "13");

    #[test]
    fn cookies_are_decoded_and_the_first_name_wins() {
        let h = headers(&[("cookie", "username=getkey; password=%73ecret; q=\"quoted\""), ("cookie", "username=other")]);
        let c = parse_cookies(&h);
        assert_eq!(c["username"], "getkey");
        assert_eq!(c["password"], "secret");
        assert_eq!(c["q"], "quoted");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn garbage_cookies_are_skipped() {
        let h = headers(&[("cookie", ";;=x; ok=1; bad")]);
        let c = parse_cookies(&h);
        assert_eq!(c.get("ok").map(String::as_str), Some("1"));
    }

    #[test]
    fn upgrade_detection_reads_token_lists() {
        assert!(is_websocket_upgrade(&headers(&[("upgrade", "WebSocket"), ("connection", "keep-alive, Upgrade")])));
        assert!(!is_websocket_upgrade(&headers(&[("upgrade", "h2c"), ("connection", "Upgrade")])));
        assert!(!is_websocket_upgrade(&headers(&[("upgrade", "websocket")])));
    }

    #[tokio::test]
    async fn a_good_request_is_switched_with_the_rfc_accept_key() {
        let out = negotiate("/enslavism/slaves", &headers(&[KEY, VERSION]), addr(), &NoHooks, Duration::from_secs(1)).await;
        assert_eq!(out.upgraded, Some((PeerKind::Slave, ProtocolVersion::V1)));
        assert_eq!(out.response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example of RFC 6455, section 1.3.
        assert_eq!(out.response.headers()[header::SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn version_2_is_chosen_when_offered_and_unknown_versions_are_not_agreed_to() {
        let choose = |offer: &str| {
            let h = headers(&[("sec-websocket-protocol", offer)]);
            let (sub, version) = choose_protocol(&h);
            (sub.map(str::to_owned), version)
        };
        assert_eq!(choose("chat, enslavism.2"), (Some("enslavism.2".into()), ProtocolVersion::V2));
        assert_eq!(choose("enslavism.1, enslavism.2"), (Some("enslavism.2".into()), ProtocolVersion::V2));
        assert_eq!(choose("enslavism.1, enslavism.9"), (Some("enslavism.1".into()), ProtocolVersion::V1));
        assert_eq!(choose("chat, superchat"), (Some("chat".into()), ProtocolVersion::V1));
        assert_eq!(choose("enslavism.9"), (None, ProtocolVersion::V1));
        assert_eq!(choose_protocol(&HeaderMap::new()), (None, ProtocolVersion::V1));
    }

    #[tokio::test]
    async fn bad_requests_are_refused() {
        let t = Duration::from_secs(1);
        let out = negotiate("/elsewhere", &headers(&[KEY, VERSION]), addr(), &NoHooks, t).await;
        assert_eq!((out.upgraded, out.response.status()), (None, StatusCode::NOT_FOUND));
        let out = negotiate("/enslavism/clients", &headers(&[KEY, ("sec-websocket-version", "8")]), addr(), &NoHooks, t).await;
        assert_eq!((out.upgraded, out.response.status()), (None, StatusCode::BAD_REQUEST));
        let out =
            negotiate("/enslavism/clients", &headers(&[("sec-websocket-key", "short"), VERSION]), addr(), &NoHooks, t).await;
        assert_eq!((out.upgraded, out.response.status()), (None, StatusCode::BAD_REQUEST));
    }

    struct Refuse;
    impl MasterHooks for Refuse {
        fn authorize(&self, req: AuthRequest) -> super::super::hooks::AuthDecision {
            let reason = format!("no {} today", req.kind.name());
            Box::pin(async move { Err(Rejection { reason: Some(reason) }) })
        }
    }

    #[tokio::test]
    async fn a_refusal_is_a_401_with_the_reason() {
        let out = negotiate("/enslavism/slaves", &headers(&[KEY, VERSION]), addr(), &Refuse, Duration::from_secs(1)).await;
        assert_eq!(out.upgraded, None);
        assert_eq!(out.response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(out.response.body().as_ref(), b"no slave today");
        let raw = String::from_utf8(serialize_response(&out.response)).unwrap();
        assert!(raw.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{raw}");
        assert!(raw.ends_with("content-length: 14\r\n\r\nno slave today"), "{raw}");
    }
}
