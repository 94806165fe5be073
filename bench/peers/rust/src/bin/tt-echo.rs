//! Peer server of bench/peers: tokio-tungstenite echo configured for memory, not defaults.
//! `WebSocketConfig` read buffer and write buffer both 0 (the smallest it allows: the codec
//! then reserves only a frame header, 14 bytes, and grows to the largest message seen; writes
//! go out eagerly), or the sizes given as `--read-buf N --write-buf N`. With `--cert FILE --key
//! FILE` (PEM) each connection is TLS first, through tokio-rustls (rustls on ring, its defaults:
//! TLS 1.3 and 1.2, default buffer limits, session tickets on): the Rust TLS row of
//! bench/peers/tls.py. Current-thread runtime (the server is pinned to one core). Listen
//! backlog: `peers_rust::BACKLOG`. Prints `listening on ADDR`.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The TLS acceptor of `--cert`/`--key`, or `None` for plain websockets.
fn acceptor() -> Option<TlsAcceptor> {
    let (cert, key) = match (peers_rust::arg_str("--cert"), peers_rust::arg_str("--key")) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return None,
        _ => panic!("--cert FILE and --key FILE go together"),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("--cert: readable PEM")
        .collect::<Result<_, _>>()
        .expect("--cert: PEM certificates");
    let key = PrivateKeyDer::from_pem_file(&key).expect("--key: a PEM private key");
    let tls = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    Some(TlsAcceptor::from(Arc::new(tls)))
}

/// Echoes text and binary messages until the peer closes or fails.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S, config: WebSocketConfig) {
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() || msg.is_binary() {
            if ws.send(msg).await.is_err() {
                break;
            }
        } else if msg.is_close() {
            break;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let config = WebSocketConfig::default()
        .read_buffer_size(peers_rust::arg("--read-buf", 0))
        .write_buffer_size(peers_rust::arg("--write-buf", 0))
        .max_write_buffer_size(1 << 20);
    let tls = acceptor();
    let listener = peers_rust::listen(&addr);
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                Some(a) => {
                    if let Ok(s) = a.accept(stream).await {
                        echo(s, config).await;
                    }
                }
                None => echo(stream, config).await,
            }
        });
    }
}
