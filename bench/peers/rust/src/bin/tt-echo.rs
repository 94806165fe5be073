//! Peer server of bench/peers: tokio-tungstenite echo configured for memory, not defaults.
//! `WebSocketConfig` read buffer and write buffer both 0 (the smallest it allows: the codec
//! then reserves only a frame header, 14 bytes, and grows to the largest message seen; writes
//! go out eagerly), or the sizes given as `--read-buf N --write-buf N`. Current-thread runtime
//! (the server is pinned to one core). Listen backlog: `peers_rust::BACKLOG`. Prints
//! `listening on ADDR`.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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
    let listener = peers_rust::listen(&addr);
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
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
