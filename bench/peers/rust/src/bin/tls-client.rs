//! The one client of bench/peers' TLS rows: opens N websockets to ADDR over TLS (rustls on
//! ring, a full handshake every time: session resumption off, so every row pays the same
//! handshake) or plain TCP (`--plain`), at most C handshakes in flight, from rotating
//! 127.0.0.x source addresses; reports the open rate, optionally runs an echo round (each
//! connection sends a message of `--size` bytes and waits for its echo, repeatedly, for D
//! seconds), then holds the connections for H seconds. One tokio current-thread runtime (the
//! client is pinned to one core). Trusts only the CA in `--ca FILE`; the server name is the
//! address's IP (the test certificate carries it as an IP SAN). Prints one JSON line per
//! phase, as bench/server-client does. Usage:
//!   tls-client ADDR CONNS [--plain] [--ca FILE] [--concurrency C] [--open-secs S]
//!              [--echo-secs D] [--size B] [--hold-secs H]

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long the open phase may take before the client reports what it has, by default
/// (`--open-secs`): a TLS handshake costs a server 20-50x a plain one, and a shared machine
/// gives it a fraction of a core.
const OPEN_SECS: usize = 120;

trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}
type Ws = WebSocketStream<Box<dyn Io>>;

async fn tcp(addr: SocketAddr, n: u32) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 200) as u8)),
        0,
    ))?;
    let t = s.connect(addr).await?;
    t.set_nodelay(true)?;
    Ok(t)
}

async fn open(addr: SocketAddr, n: u32, tls: Option<TlsConnector>) -> Result<Ws, String> {
    let t = tcp(addr, n).await.map_err(|e| format!("connect: {e}"))?;
    let (io, scheme): (Box<dyn Io>, _) = match tls {
        Some(c) => {
            let name = ServerName::IpAddress(addr.ip().into());
            let s = c.connect(name, t).await.map_err(|e| format!("tls: {e}"))?;
            (Box::new(s), "wss")
        }
        None => (Box::new(t), "ws"),
    };
    let url = format!("{scheme}://{addr}/");
    let (ws, _) = tokio_tungstenite::client_async(url, io)
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    Ok(ws)
}

fn connector(ca: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("--ca: readable PEM") {
        roots
            .add(c.expect("--ca: PEM certificates"))
            .expect("--ca: a CA certificate");
    }
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn echo(mut ws: Ws, size: usize, until: Instant, got: Rc<Cell<u64>>) -> Ws {
    let msg = Message::binary(vec![b'x'; size]);
    while Instant::now() < until {
        if ws.send(msg.clone()).await.is_err() {
            break;
        }
        match ws.next().await {
            Some(Ok(m)) if m.len() == size => got.set(got.get() + 1),
            _ => break,
        }
    }
    ws
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args[1].parse().expect("ADDR");
    let n: usize = args[2].parse().expect("CONNS");
    let concurrency = peers_rust::arg("--concurrency", 256);
    let echo_secs = peers_rust::arg("--echo-secs", 0) as u64;
    let size = peers_rust::arg("--size", 32);
    let hold_secs = peers_rust::arg("--hold-secs", 0) as u64;
    let open_secs = peers_rust::arg("--open-secs", OPEN_SECS) as u64;
    let tls = if args.iter().any(|a| a == "--plain") {
        None
    } else {
        Some(connector(
            &peers_rust::arg_str("--ca").expect("--ca FILE (or --plain)"),
        ))
    };
    let gate = Arc::new(Semaphore::new(concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let local = tokio::task::LocalSet::new();
    let t0 = Instant::now();
    let conns = local
        .run_until(async move {
            for i in 0..n {
                let (gate, tx, tls) = (gate.clone(), tx.clone(), tls.clone());
                tokio::task::spawn_local(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    let _ = tx.send(open(addr, i as u32, tls).await);
                });
            }
            let mut conns = Vec::with_capacity(n);
            let mut errors: Vec<String> = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(open_secs);
            while conns.len() + errors.len() < n {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Ok(ws))) => conns.push(ws),
                    Ok(Some(Err(e))) => errors.push(e),
                    _ => break,
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            errors.sort();
            errors.dedup();
            println!(
                "{}",
                serde_json::json!({"phase": "open", "opened": conns.len(),
                    "failed": n - conns.len(), "secs": secs,
                    "per_sec": conns.len() as f64 / secs, "errors": &errors[..errors.len().min(5)]})
            );
            if echo_secs > 0 {
                let got = Rc::new(Cell::new(0u64));
                let t = Instant::now();
                let until = t + Duration::from_secs(echo_secs);
                let tasks: Vec<_> = conns
                    .drain(..)
                    .map(|ws| tokio::task::spawn_local(echo(ws, size, until, got.clone())))
                    .collect();
                for task in tasks {
                    conns.push(task.await.unwrap());
                }
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "{}",
                    serde_json::json!({"phase": "echo", "received": got.get(), "secs": secs,
                        "msgs_per_sec": got.get() as f64 / secs, "size": size})
                );
            }
            conns
        })
        .await;
    if hold_secs > 0 {
        tokio::time::sleep(Duration::from_secs(hold_secs)).await;
        println!(
            "{}",
            serde_json::json!({"phase": "hold", "open": conns.len()})
        );
    }
}
