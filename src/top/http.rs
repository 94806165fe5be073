//! `tune top --listen`'s HTTP endpoint: serves the latest exposition at `/metrics` from a thread (tiny_http does the HTTP).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::values::{Input, Refused};

/// What Prometheus expects for the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A listening endpoint; [`Endpoint::publish`] replaces what `/metrics` answers.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
}

impl Endpoint {
    /// Listens on `addr` (port 0: the kernel picks one, [`Endpoint::addr`] says which) and
    /// serves from a thread for the life of the process.
    pub fn bind(addr: &str) -> anyhow::Result<Endpoint> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| Refused::new(Input::Listen, addr, format!("cannot listen: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Refused::new(Input::Listen, addr, "not an IP address"))?;
        let body = Arc::new(Mutex::new(String::new()));
        let shared = Arc::clone(&body);
        std::thread::Builder::new()
            .name("tune-top-http".into())
            .spawn(move || serve(&server, &shared))?;
        Ok(Endpoint { addr, body })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn publish(&self, text: String) {
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }
}

fn serve(server: &tiny_http::Server, body: &Mutex<String>) {
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let (code, text) = match path {
            "/metrics" => (200, body.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            "/" => (200, "tune top: the metrics are at /metrics\n".to_string()),
            _ => (404, "not found: the metrics are at /metrics\n".to_string()),
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], CONTENT_TYPE.as_bytes())
            .expect("a valid header");
        // A client that went away is its own business.
        let _ = req.respond(
            tiny_http::Response::from_string(text)
                .with_status_code(code)
                .with_header(header),
        );
    }
}
