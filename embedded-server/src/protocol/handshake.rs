//! The HTTP side of a connection: parse a request with tungstenite (`TryParse for Request`,
//! `create_response`), decide upgrade / plain HTTP / rejection, and build the bytes to send.
//! Also the client side (request text, response check) for the load generator.

use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::handshake::client::Response as ClientResponse;
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response, Request};

pub use tungstenite::handshake::client::generate_key;
pub use tungstenite::handshake::derive_accept_key;

/// What a complete (or failed) request turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not all of the request head has arrived yet.
    Partial,
    /// A valid websocket upgrade: send `response`; frames start at `consumed`.
    Upgrade { response: Vec<u8>, consumed: usize },
    /// A plain HTTP GET (no upgrade asked for), for `path`.
    Http { path: String, consumed: usize },
    /// Refused: answer with [`Rejection::response`] and close.
    Reject(Rejection),
}

/// Why a handshake failed; each has an HTTP status and a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not parseable as HTTP/1.x.
    Malformed,
    /// The request head exceeded the size limit (or had too many headers).
    TooLarge,
    /// Not all of the request head arrived within the time limit.
    Timeout,
    /// A method other than GET.
    Method,
    /// HTTP/1.0 (websockets need 1.1).
    HttpVersion,
    /// An Upgrade to something other than websocket, or Upgrade without `Connection: Upgrade`.
    BadUpgrade,
    /// Sec-WebSocket-Version missing or not 13.
    Version,
    /// Sec-WebSocket-Key missing or not 16 base64-encoded bytes.
    Key,
}

impl Rejection {
    pub const ALL: [Rejection; 8] = [
        Rejection::Malformed,
        Rejection::TooLarge,
        Rejection::Timeout,
        Rejection::Method,
        Rejection::HttpVersion,
        Rejection::BadUpgrade,
        Rejection::Version,
        Rejection::Key,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::TooLarge => "too_large",
            Rejection::Timeout => "timeout",
            Rejection::Method => "method",
            Rejection::HttpVersion => "http_version",
            Rejection::BadUpgrade => "bad_upgrade",
            Rejection::Version => "version",
            Rejection::Key => "key",
        }
    }

    pub fn status(self) -> (u16, &'static str) {
        match self {
            Rejection::Malformed | Rejection::BadUpgrade | Rejection::Key => (400, "Bad Request"),
            Rejection::TooLarge => (431, "Request Header Fields Too Large"),
            Rejection::Timeout => (408, "Request Timeout"),
            Rejection::Method => (405, "Method Not Allowed"),
            Rejection::HttpVersion => (505, "HTTP Version Not Supported"),
            Rejection::Version => (426, "Upgrade Required"),
        }
    }

    /// The full HTTP response, closing the connection.
    pub fn response(self) -> Vec<u8> {
        let (code, text) = self.status();
        let extra = match self {
            Rejection::Version => "Sec-WebSocket-Version: 13\r\n",
            Rejection::Method => "Allow: GET\r\n",
            _ => "",
        };
        let body = format!("{}: {}\n", text, self.label());
        http_response(
            code,
            text,
            extra,
            "text/plain; charset=utf-8",
            body.as_bytes(),
        )
    }
}

/// An HTTP/1.1 response that closes the connection.
pub fn http_response(
    code: u16,
    text: &str,
    extra_headers: &str,
    ctype: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {text}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn has_token(req: &Request, name: &str, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Parses the request head at the start of `buf`, allowing at most `max_len` bytes for it.
pub fn parse_request(buf: &[u8], max_len: usize) -> Parsed {
    let (consumed, req) = match Request::try_parse(buf) {
        Ok(None) if buf.len() >= max_len => return Parsed::Reject(Rejection::TooLarge),
        Ok(None) => return Parsed::Partial,
        Ok(Some(x)) => x,
        Err(WsError::Protocol(ProtocolError::WrongHttpMethod)) => {
            return Parsed::Reject(Rejection::Method)
        }
        Err(WsError::Protocol(ProtocolError::WrongHttpVersion)) => {
            return Parsed::Reject(Rejection::HttpVersion)
        }
        Err(WsError::Capacity(_)) => return Parsed::Reject(Rejection::TooLarge),
        Err(_) => return Parsed::Reject(Rejection::Malformed),
    };
    if consumed > max_len {
        return Parsed::Reject(Rejection::TooLarge);
    }
    let upgrade = req.headers().get("Upgrade");
    let wants_upgrade = upgrade.is_some() || has_token(&req, "Connection", "upgrade");
    if !wants_upgrade {
        return Parsed::Http {
            path: req.uri().path().to_string(),
            consumed,
        };
    }
    if !has_token(&req, "Upgrade", "websocket") {
        return Parsed::Reject(Rejection::BadUpgrade);
    }
    match create_response(&req) {
        Ok(resp) => {
            let mut out = Vec::with_capacity(160);
            match write_response(&mut out, &resp) {
                Ok(()) => Parsed::Upgrade {
                    response: out,
                    consumed,
                },
                Err(_) => Parsed::Reject(Rejection::Malformed),
            }
        }
        Err(WsError::Protocol(p)) => Parsed::Reject(match p {
            ProtocolError::MissingSecWebSocketVersionHeader => Rejection::Version,
            ProtocolError::MissingSecWebSocketKey | ProtocolError::InvalidSecWebSocketKey => {
                Rejection::Key
            }
            ProtocolError::WrongHttpMethod => Rejection::Method,
            ProtocolError::WrongHttpVersion => Rejection::HttpVersion,
            ProtocolError::MissingConnectionUpgradeHeader
            | ProtocolError::MissingUpgradeWebSocketHeader => Rejection::BadUpgrade,
            _ => Rejection::Malformed,
        }),
        Err(_) => Parsed::Reject(Rejection::Malformed),
    }
}

/// The client's upgrade request for `host` (host:port) and `path` with `key`
/// (from [`generate_key`]).
pub fn client_request(host: &str, path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why a server's handshake response was refused by the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    Malformed,
    Status(u16),
    BadAccept,
}

/// Checks the server's response head at the start of `buf` for a request sent with `key`.
/// `Ok(None)`: incomplete; `Ok(Some(n))`: valid, frames start at `n`.
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, ResponseError> {
    let (n, resp) = match ClientResponse::try_parse(buf) {
        Ok(None) => return Ok(None),
        Ok(Some(x)) => x,
        Err(_) => return Err(ResponseError::Malformed),
    };
    if resp.status().as_u16() != 101 {
        return Err(ResponseError::Status(resp.status().as_u16()));
    }
    let want = derive_accept_key(key.as_bytes());
    match resp.headers().get("Sec-WebSocket-Accept") {
        Some(v) if v.as_bytes() == want.as_bytes() => Ok(Some(n)),
        _ => Err(ResponseError::BadAccept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    fn req(lines: &[&str]) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    fn good() -> Vec<&'static str> {
        vec![
            "GET /chat HTTP/1.1",
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: keep-alive, Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    }

    #[test]
    fn rfc_sample_upgrade() {
        let mut bytes = req(&good());
        let head_len = bytes.len();
        bytes.extend_from_slice(&[0x81, 0x80]); // a frame right behind the head
        match parse_request(&bytes, MAX) {
            Parsed::Upgrade { response, consumed } => {
                assert_eq!(consumed, head_len);
                let text = String::from_utf8(response).unwrap();
                assert!(
                    text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
                    "{text}"
                );
                // RFC 6455 section 1.3 sample accept value.
                assert!(
                    text.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
                    "{text}"
                );
                assert!(text.ends_with("\r\n\r\n"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_until_the_blank_line_then_too_large() {
        let bytes = req(&good());
        for n in 0..bytes.len() {
            assert_eq!(parse_request(&bytes[..n], MAX), Parsed::Partial, "{n}");
        }
        assert_eq!(
            parse_request(&bytes[..20], 20),
            Parsed::Reject(Rejection::TooLarge)
        );
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX + 10, b'a');
        assert_eq!(
            parse_request(&big, MAX),
            Parsed::Reject(Rejection::TooLarge)
        );
        let many: Vec<String> = (0..200).map(|i| format!("X-{i}: v")).collect();
        let mut lines = vec!["GET / HTTP/1.1".to_string()];
        lines.extend(many);
        let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            parse_request(&req(&refs), MAX),
            Parsed::Reject(Rejection::TooLarge)
        );
    }

    fn with(replace: &str, by: Option<&str>) -> Parsed {
        let lines: Vec<&str> = good()
            .into_iter()
            .filter_map(|l| if l.starts_with(replace) { by } else { Some(l) })
            .collect();
        parse_request(&req(&lines), MAX)
    }

    #[test]
    fn every_rejection() {
        use Rejection::*;
        assert_eq!(
            parse_request(b"\x16\x03\x01 garbage\r\n\r\n", MAX),
            Parsed::Reject(Malformed)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", MAX),
            Parsed::Reject(Malformed)
        );
        assert_eq!(
            with("GET", Some("POST /chat HTTP/1.1")),
            Parsed::Reject(Method)
        );
        assert_eq!(
            with("GET", Some("GET /chat HTTP/1.0")),
            Parsed::Reject(HttpVersion)
        );
        assert_eq!(
            with("Upgrade", Some("Upgrade: h2c")),
            Parsed::Reject(BadUpgrade)
        );
        assert_eq!(
            with("Connection", Some("Connection: keep-alive")),
            Parsed::Reject(BadUpgrade)
        );
        assert_eq!(
            with("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
            Parsed::Reject(Version)
        );
        assert_eq!(with("Sec-WebSocket-Version", None), Parsed::Reject(Version));
        assert_eq!(with("Sec-WebSocket-Key", None), Parsed::Reject(Key));
        assert_eq!(
            with("Sec-WebSocket-Key", Some("Sec-WebSocket-Key: c2hvcnQ=")),
            Parsed::Reject(Key)
        );
        let r = Version.response();
        let t = String::from_utf8(r).unwrap();
        assert!(t.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(t.contains("Sec-WebSocket-Version: 13\r\n"));
        for r in Rejection::ALL {
            let t = String::from_utf8(r.response()).unwrap();
            assert!(t.contains("Connection: close\r\n"));
            assert!(t.ends_with(&format!("{}\n", r.label())));
        }
    }

    #[test]
    fn plain_get_is_http() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", MAX),
            Parsed::Http {
                path: "/metrics".into(),
                consumed: 34
            }
        );
        assert_eq!(
            parse_request(b"GET /healthz?x=1 HTTP/1.1\r\n\r\n", MAX),
            Parsed::Http {
                path: "/healthz".into(),
                consumed: 29
            }
        );
    }

    #[test]
    fn client_side_roundtrip() {
        let key = generate_key();
        let r = client_request("127.0.0.1:1", "/", &key);
        let resp = match parse_request(r.as_bytes(), MAX) {
            Parsed::Upgrade { response, .. } => response,
            other => panic!("{other:?}"),
        };
        assert_eq!(parse_response(&resp, &key), Ok(Some(resp.len())));
        assert_eq!(parse_response(&resp[..10], &key), Ok(None));
        assert_eq!(
            parse_response(&resp, "dGhlIHNhbXBsZSBub25jZQ=="),
            Err(ResponseError::BadAccept)
        );
        assert_eq!(
            parse_response(&Key.response(), &key),
            Err(ResponseError::Status(400))
        );
    }

    use Rejection::Key;
}
