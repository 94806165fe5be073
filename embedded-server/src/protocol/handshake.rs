//! The HTTP side of a connection: parse an upgrade request (httparse, the parser tungstenite
//! itself uses, into borrowed headers on the stack), decide upgrade / plain HTTP / rejection
//! by RFC 6455 section 4.2.1, and build the bytes to send; the accept key is tungstenite's
//! `derive_accept_key`. Also the client side (request bytes, response check) for the load
//! generator.
//!
//! Why not tungstenite's `TryParse for Request` and `create_response`: they build an
//! `http::Request` and `http::Response` with a `HeaderMap` (several allocations per header), which
//! was ~4% of all CPU while opening connections at 23k/s (BENCHMARKS.md "## Verify"); this path
//! allocates only the accept key.

use std::mem::MaybeUninit;

pub use tungstenite::handshake::client::generate_key;
pub use tungstenite::handshake::derive_accept_key;

/// Headers parsed per request head: browsers send 10-20, proxies add a few; a request with
/// more is refused as too large (431) rather than parsed with a heap array.
pub const MAX_HEADERS: usize = 64;
/// Headers parsed per response head (our own servers send 4; others a handful more).
const MAX_RESPONSE_HEADERS: usize = 32;
/// Length of a Sec-WebSocket-Accept value: base64 of a 20-byte SHA-1.
pub const ACCEPT_LEN: usize = 28;
/// Length of a Sec-WebSocket-Key value: base64 of 16 random bytes (RFC 6455 section 4.1).
pub const KEY_LEN: usize = 24;

/// A Sec-WebSocket-Accept value.
pub type AcceptKey = [u8; ACCEPT_LEN];

/// What a complete (or failed) request turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not all of the request head has arrived yet.
    Partial,
    /// A valid websocket upgrade: send [`upgrade_response`] of `accept`; frames start at
    /// `consumed`.
    Upgrade { accept: AcceptKey, consumed: usize },
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
    /// An upgrade asked for over HTTP/1.0 (websockets need 1.1; plain HTTP/1.0 GETs are served).
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

/// The 101 response accepting an upgrade, appended to `out`.
pub fn upgrade_response(accept: &AcceptKey, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n\r\n");
}

/// The value of header `name` (case-insensitive), trimmed; the first one when repeated.
fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim_ascii())
}

/// Whether any header `name` holds `token` in its comma-separated list (case-insensitive).
fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether `key` is the base64 encoding of exactly 16 bytes (RFC 6455 section 4.2.1, item 5).
fn valid_key(key: &[u8]) -> bool {
    let enc = &data_encoding::BASE64;
    let mut out = [0u8; 18];
    key.len() == KEY_LEN
        && enc.decode_len(key.len()) == Ok(out.len())
        && enc.decode_mut(key, &mut out) == Ok(16)
}

/// The path of a request target without its query; absolute-form targets lose scheme and host.
fn path_of(target: &str) -> &str {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .map(|r| r.find('/').map_or("/", |i| &r[i..]))
        .unwrap_or(target);
    rest.split(['?', '#']).next().unwrap_or(rest)
}

/// Parses the request head at the start of `buf`, allowing at most `max_len` bytes for it.
pub fn parse_request(buf: &[u8], max_len: usize) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let consumed = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => {
            return Parsed::Reject(Rejection::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(Rejection::TooLarge),
        Err(_) => return Parsed::Reject(Rejection::Malformed),
    };
    if consumed > max_len {
        return Parsed::Reject(Rejection::TooLarge);
    }
    if req.method != Some("GET") {
        return Parsed::Reject(Rejection::Method);
    }
    let headers: &[httparse::Header<'_>] = req.headers;
    let wants_upgrade =
        header(headers, "Upgrade").is_some() || has_token(headers, "Connection", "upgrade");
    if !wants_upgrade {
        return Parsed::Http {
            path: path_of(req.path.unwrap_or("/")).to_string(),
            consumed,
        };
    }
    // httparse accepts HTTP/1.0 and 1.1 only; an upgrade needs 1.1 (section 4.1 item 1).
    if req.version != Some(1) {
        return Parsed::Reject(Rejection::HttpVersion);
    }
    if !has_token(headers, "Connection", "upgrade") || !has_token(headers, "Upgrade", "websocket") {
        return Parsed::Reject(Rejection::BadUpgrade);
    }
    if header(headers, "Sec-WebSocket-Version") != Some(b"13") {
        return Parsed::Reject(Rejection::Version);
    }
    let Some(key) = header(headers, "Sec-WebSocket-Key").filter(|k| valid_key(k)) else {
        return Parsed::Reject(Rejection::Key);
    };
    let mut accept = [0u8; ACCEPT_LEN];
    accept.copy_from_slice(derive_accept_key(key).as_bytes());
    Parsed::Upgrade { accept, consumed }
}

/// A Sec-WebSocket-Key value.
pub type Key = [u8; KEY_LEN];

/// A fresh random key (tungstenite's `generate_key`: 16 random bytes, base64).
pub fn new_key() -> Key {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(generate_key().as_bytes());
    k
}

/// The part of the client's upgrade request before and after the key, for `host` (host:port)
/// and `path`: built once per load worker, so a connection only copies bytes.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    head: Vec<u8>,
    tail: &'static [u8],
}

impl RequestTemplate {
    pub fn new(host: &str, path: &str) -> Self {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: "
        )
        .into_bytes();
        RequestTemplate {
            head,
            tail: b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
        }
    }

    /// Replaces `out` with the request carrying `key`.
    pub fn write(&self, key: &Key, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        out.extend_from_slice(key);
        out.extend_from_slice(self.tail);
    }
}

/// The client's upgrade request for `host` (host:port) and `path` with `key`.
pub fn client_request(host: &str, path: &str, key: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    RequestTemplate::new(host, path).write(key, &mut out);
    out
}

/// Why a server's handshake response was refused by the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.1 response head, or a 101 without `Upgrade: websocket` and
    /// `Connection: Upgrade` (RFC 6455 section 4.1, items 2-3 of the client's checks).
    Malformed,
    Status(u16),
    BadAccept,
}

/// Checks the server's response head at the start of `buf` for a request sent with `key`.
/// `Ok(None)`: incomplete; `Ok(Some(n))`: valid, frames start at `n`.
pub fn parse_response(buf: &[u8], key: &Key) -> Result<Option<usize>, ResponseError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(ResponseError::Status(code));
    }
    let headers: &[httparse::Header<'_>] = resp.headers;
    if !has_token(headers, "Upgrade", "websocket") || !has_token(headers, "Connection", "upgrade") {
        return Err(ResponseError::Malformed);
    }
    match header(headers, "Sec-WebSocket-Accept") {
        Some(v) if v == derive_accept_key(key).as_bytes() => Ok(Some(n)),
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
            Parsed::Upgrade { accept, consumed } => {
                assert_eq!(consumed, head_len);
                let mut response = Vec::new();
                upgrade_response(&accept, &mut response);
                let text = String::from_utf8(response).unwrap();
                assert!(
                    text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
                    "{text}"
                );
                // RFC 6455 section 1.3 sample accept value.
                assert!(
                    text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
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
    fn plain_http_1_0_is_served_and_targets_lose_query_and_authority() {
        assert_eq!(
            parse_request(b"GET /healthz HTTP/1.0\r\n\r\n", MAX),
            Parsed::Http {
                path: "/healthz".into(),
                consumed: 25
            }
        );
        assert_eq!(
            parse_request(b"GET http://h:1/metrics?a#b HTTP/1.1\r\n\r\n", MAX),
            Parsed::Http {
                path: "/metrics".into(),
                consumed: 39
            }
        );
    }

    #[test]
    fn key_must_be_16_bytes_of_base64_and_headers_match_any_case() {
        // 24 characters that are not base64 of 16 bytes.
        assert_eq!(
            with(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: ########################")
            ),
            Parsed::Reject(Rejection::Key)
        );
        assert_eq!(
            with(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AAAA")
            ),
            Parsed::Reject(Rejection::Key)
        );
        let lower = req(&[
            "GET / HTTP/1.1",
            "upgrade: WebSocket",
            "connection: upgrade",
            "sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ==  ",
            "sec-websocket-version: 13",
        ]);
        assert!(matches!(
            parse_request(&lower, MAX),
            Parsed::Upgrade { accept, .. } if &accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        ));
    }

    #[test]
    fn client_side_roundtrip() {
        let key = new_key();
        let r = client_request("127.0.0.1:1", "/", &key);
        let mut resp = Vec::new();
        match parse_request(&r, MAX) {
            Parsed::Upgrade { accept, .. } => upgrade_response(&accept, &mut resp),
            other => panic!("{other:?}"),
        };
        assert_eq!(parse_response(&resp, &key), Ok(Some(resp.len())));
        assert_eq!(parse_response(&resp[..10], &key), Ok(None));
        assert_eq!(
            parse_response(&resp, b"dGhlIHNhbXBsZSBub25jZQ=="),
            Err(ResponseError::BadAccept)
        );
        // A 101 that does not say it switched to websocket is refused (section 4.1).
        let text = String::from_utf8(resp.clone()).unwrap();
        let no_upgrade = text.replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            parse_response(no_upgrade.as_bytes(), &key),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse_response(&Key.response(), &key),
            Err(ResponseError::Status(400))
        );
    }

    use Rejection::Key;
}
