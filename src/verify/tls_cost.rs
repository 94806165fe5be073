//! What TLS cost a run, per connection: handshake CPU on each side (the thread CPU the
//! server workers and client processes spent processing handshake records, over the
//! handshakes they completed) and the memory an idle TLS connection holds, user and kernel,
//! measured the way the plain figures beside it are. The JSON names are read by other tools
//! (`check --tls` from a saved report): keep them.

use serde::Serialize;

use crate::units::bytes;

/// The `tls` object of the verify and load reports (`null` for a plain ws:// run).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsCost {
    pub handshake_cpu_us_server: Option<f64>,
    pub handshake_cpu_us_client: Option<f64>,
    pub idle_bytes_per_connection_user: Option<f64>,
    pub idle_bytes_per_connection_kernel: Option<f64>,
}

/// CPU per handshake in µs from (handshakes, ns), when any completed.
pub fn per_handshake_us(handshakes: u64, cpu_ns: u64) -> Option<f64> {
    (handshakes > 0).then(|| cpu_ns as f64 / handshakes as f64 / 1000.0)
}

impl TlsCost {
    /// The report's lines for people (after a `TLS` label).
    pub fn lines(&self) -> Vec<String> {
        let us = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.0} µs"));
        let b = |v: Option<f64>| v.map_or("n/a".into(), |x| bytes(x.max(0.0).round() as u64));
        vec![
            format!(
                "handshake CPU per connection: server {}, client {}",
                us(self.handshake_cpu_us_server),
                us(self.handshake_cpu_us_client)
            ),
            format!(
                "idle connection: user {}, kernel {} per connection",
                b(self.idle_bytes_per_connection_user),
                b(self.idle_bytes_per_connection_kernel)
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_handshake_is_none_without_handshakes() {
        assert_eq!(per_handshake_us(0, 5_000), None);
        assert_eq!(per_handshake_us(4, 2_000_000), Some(500.0));
    }

    #[test]
    fn lines_say_n_a_for_what_was_not_measured() {
        let t = TlsCost {
            handshake_cpu_us_server: Some(812.4),
            ..TlsCost::default()
        };
        let l = t.lines();
        assert!(l[0].contains("server 812 µs, client n/a"), "{l:?}");
        assert!(l[1].contains("user n/a"), "{l:?}");
    }
}
