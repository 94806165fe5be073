//! Whether conntrack tracks this network namespace's connections, found by opening one loopback connection and looking for it.
//!
//! The entry count is the wrong signal: right after an nft `ct state` rule and before any
//! packet it is 0, and one stale entry left by a runtime's `nat` table makes it non-zero in a
//! namespace that may track nothing more. The kernel registers conntrack's hooks for a
//! namespace when any rule or table needs them (`nf_ct_netns_get`), and from then on every
//! new connection gets an entry: so a fresh loopback connection is tracked exactly when the
//! namespace tracks.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::kernel::nf_conntrack;
use crate::root::Root;

/// How long the probe's loopback connect may take before the probe gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections tried when the count did not move and the entry table cannot be read: another
/// entry expiring at the same moment can hide one rise, not three.
const ATTEMPTS: usize = 3;

pub const COUNT: &str = "proc/sys/net/netfilter/nf_conntrack_count";
pub const TABLE: &str = "proc/net/nf_conntrack";

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Tracking {
    /// New connections here get a conntrack entry.
    Tracks { evidence: String },
    /// Conntrack is loaded but a new connection got no entry.
    DoesNot { evidence: String },
    /// nf_conntrack is not loaded: nothing can be tracked.
    NotLoaded,
    /// The probe could not run (captured root, loopback down, ...).
    Unknown { why: String },
}

impl Tracking {
    /// `Some(true)` tracks, `Some(false)` does not (or not loaded), `None` unknown.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Tracking::Tracks { .. } => Some(true),
            Tracking::DoesNot { .. } | Tracking::NotLoaded => Some(false),
            Tracking::Unknown { .. } => None,
        }
    }

    /// The reason in words.
    pub fn evidence(&self) -> String {
        match self {
            Tracking::Tracks { evidence } | Tracking::DoesNot { evidence } => evidence.clone(),
            Tracking::NotLoaded => "nf_conntrack is not loaded".into(),
            Tracking::Unknown { why } => format!("not probed: {why}"),
        }
    }
}

fn count(root: &Root) -> Option<u64> {
    root.read(COUNT).ok()?.trim().parse().ok()
}

/// One loopback connection held open while `look` runs; `look` gets (source port, destination port).
fn with_connection<T>(look: impl FnOnce(u16, u16) -> T) -> Result<T, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let to: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    let client = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)
        .map_err(|e| format!("loopback connect to {to}: {e} (is lo up?)"))?;
    let (server, _) = listener
        .accept()
        .map_err(|e| format!("loopback accept: {e}"))?;
    let from = client
        .local_addr()
        .map_err(|e| format!("client address: {e}"))?;
    let out = look(from.port(), to.port());
    drop(server);
    drop(client);
    Ok(out)
}

/// Probes the live namespace tune runs in.
pub fn probe(root: &Root) -> Tracking {
    if !root.is_host() {
        return Tracking::Unknown {
            why: format!("{} is not the live host", root.base().display()),
        };
    }
    if count(root).is_none() {
        return Tracking::NotLoaded;
    }
    let mut last = Tracking::Unknown {
        why: "no attempt".into(),
    };
    for _ in 0..ATTEMPTS {
        let before = count(root).unwrap_or(0);
        let seen = with_connection(|sport, dport| {
            let after = count(root).unwrap_or(0);
            let listed = root
                .read(TABLE)
                .ok()
                .and_then(|t| nf_conntrack::tracks(&t, sport, dport).ok());
            (after, listed)
        });
        let (after, listed) = match seen {
            Ok(s) => s,
            Err(why) => return Tracking::Unknown { why },
        };
        last = match listed {
            Some(true) => {
                return Tracking::Tracks {
                    evidence:
                        "a loopback connection got a conntrack entry (/proc/net/nf_conntrack)"
                            .into(),
                }
            }
            Some(false) => {
                return Tracking::DoesNot {
                    evidence:
                        "a loopback connection got no conntrack entry (/proc/net/nf_conntrack)"
                            .into(),
                }
            }
            None if after > before => {
                return Tracking::Tracks {
                    evidence: format!(
                        "a loopback connection raised nf_conntrack_count from {before} to {after}"
                    ),
                }
            }
            None => Tracking::DoesNot {
                evidence: format!(
                    "{ATTEMPTS} loopback connections left nf_conntrack_count at {after}"
                ),
            },
        };
    }
    last
}
