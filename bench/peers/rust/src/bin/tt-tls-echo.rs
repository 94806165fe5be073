//! Peer server of bench/peers' TLS rows: tokio-rustls (rustls on ring) under tokio-tungstenite,
//! the Rust stack issue 22 names. The certificate chain and key are PEM files (`--cert`,
//! `--key`; `bench/peers/tls.py` makes them). rustls as configured by default (TLS 1.3 and 1.2,
//! its default buffer limits, session tickets on); tokio-tungstenite with the buffers of the
//! plain `tt-echo` (`--read-buf`, `--write-buf`, 0 by default: the smallest it allows).
//! Current-thread runtime (the server is pinned to one core), listen backlog
//! `peers_rust::BACKLOG`. Prints `listening on ADDR`.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let cert = peers_rust::arg_str("--cert").expect("--cert FILE (PEM chain)");
    let key = peers_rust::arg_str("--key").expect("--key FILE (PEM private key)");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("--cert: readable PEM")
        .collect::<Result<_, _>>()
        .expect("--cert: PEM certificates");
    let key = PrivateKeyDer::from_pem_file(&key).expect("--key: a PEM private key");
    let tls = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let config = WebSocketConfig::default()
        .read_buffer_size(peers_rust::arg("--read-buf", 0))
        .write_buffer_size(peers_rust::arg("--write-buf", 0))
        .max_write_buffer_size(1 << 20);
    let listener = peers_rust::listen(&addr);
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tls, Some(config)).await
            else {
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
        });
    }
}
