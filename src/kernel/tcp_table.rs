//! `/proc/net/tcp` and `/proc/net/tcp6`: local ports in use per (source address, destination), TIME_WAIT included.
//!
//! A client connection takes one local port of `ip_local_port_range` for each (source
//! address, destination address and port) it talks to; TIME_WAIT keeps the port for a
//! while after the close. The busiest pair is the one that runs out of ports first.
//! The text is folded line by line without building a row per socket: at a million sockets
//! the file is 150 MB, so callers scan it seldom (`top::sample` spaces the scans by their cost).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::ParseError;

/// `st` of a listening socket (TCP_LISTEN): it holds no connection's port.
const LISTEN: &str = "0A";
/// `st` of TIME_WAIT (TCP_TIME_WAIT).
const TIME_WAIT: &str = "06";

/// Ports in use per pair, from one or more tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortUse {
    /// Sockets whose local port lies in the range, over every pair.
    pub sockets: u64,
    /// Of those, in TIME_WAIT.
    pub time_wait: u64,
    /// Distinct (source, destination) pairs.
    pub pairs: u64,
    /// Ports the busiest pair holds.
    pub busiest: u64,
    /// The busiest pair as `source → destination:port`, when there is one.
    pub busiest_pair: Option<String>,
}

/// Counts the sockets of `text` (one table's contents, header line first) whose local port is in
/// `range`, per (local address, remote address and port). `acc` accumulates over tables.
pub fn count_ports(text: &str, range: [u64; 2], acc: &mut PortCounter) -> Result<(), ParseError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim_start().starts_with("sl") => {}
        Some((_, h)) => {
            return Err(ParseError::new(
                1,
                format!("expected the header \"sl local_address rem_address st ...\", found {h:?}"),
            ))
        }
        None => return Ok(()),
    }
    for (i, line) in lines {
        let mut f = line.split_whitespace();
        let (Some(_sl), Some(local), Some(remote), Some(st)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(ParseError::new(
                i + 1,
                format!("expected \"sl local rem st ...\", found {line:?}"),
            ));
        };
        if st == LISTEN {
            continue;
        }
        let (laddr, lport) = local.rsplit_once(':').ok_or_else(|| {
            ParseError::new(i + 1, format!("local address {local:?} has no port"))
        })?;
        let port = u64::from_str_radix(lport, 16)
            .map_err(|_| ParseError::new(i + 1, format!("local port {lport:?} is not hex")))?;
        if port < range[0] || port > range[1] {
            continue;
        }
        acc.sockets += 1;
        if st == TIME_WAIT {
            acc.time_wait += 1;
        }
        let (raddr, rport) = remote.rsplit_once(':').ok_or_else(|| {
            ParseError::new(i + 1, format!("remote address {remote:?} has no port"))
        })?;
        let hex = |h: &str| {
            u128::from_str_radix(h, 16)
                .map_err(|_| ParseError::new(i + 1, format!("address {h:?} is not hex")))
        };
        let rport = u16::from_str_radix(rport, 16)
            .map_err(|_| ParseError::new(i + 1, format!("remote port {rport:?} is not hex")))?;
        let key = Pair {
            v6: laddr.len() > 8,
            local: hex(laddr)?,
            remote: hex(raddr)?,
            port: rport,
        };
        *acc.per_pair.entry(key).or_default() += 1;
    }
    Ok(())
}

/// The running count over tables; [`PortCounter::finish`] gives the [`PortUse`].
#[derive(Debug, Default)]
pub struct PortCounter {
    sockets: u64,
    time_wait: u64,
    per_pair: HashMap<Pair, u64>,
}

/// One (source address, destination address and port), as the kernel's hex numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Pair {
    v6: bool,
    local: u128,
    remote: u128,
    port: u16,
}

impl PortCounter {
    pub fn finish(self) -> PortUse {
        let busiest = self.per_pair.iter().max_by_key(|(k, n)| (**n, *k));
        PortUse {
            sockets: self.sockets,
            time_wait: self.time_wait,
            pairs: self.per_pair.len() as u64,
            busiest: busiest.map_or(0, |(_, n)| *n),
            busiest_pair: busiest.map(|(p, _)| {
                format!(
                    "{} → {}:{}",
                    address(p.v6, p.local),
                    address(p.v6, p.remote),
                    p.port
                )
            }),
        }
    }
}

/// The kernel's hex address (`0100007F`, or 32 digits for IPv6: four host-order words) as text.
fn address(v6: bool, hex: u128) -> String {
    if v6 {
        let mut bytes = [0u8; 16];
        for w in 0..4 {
            let word = (hex >> (96 - 32 * w)) as u32;
            bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        Ipv6Addr::from(bytes).to_string()
    } else {
        Ipv4Addr::from((hex as u32).to_le_bytes()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18: /proc/net/tcp with a listener on 127.0.0.1:45639 and two client sockets
    /// from 127.0.0.1 (one ESTABLISHED, one TIME_WAIT) and one from 127.0.0.2.
    const LINUX_6_18_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:B247 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 27965 1 000000007712b831 100 0 0 10 0
   1: 0100007F:8CA2 0100007F:B247 01 00000000:00000000 00:00000000 00000000     0        0 31001 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:8CA4 0100007F:B247 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: 0200007F:8CA2 0100007F:B247 01 00000000:00000000 00:00000000 00000000     0        0 31003 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:B247 0100007F:8CA2 01 00000000:00000000 00:00000000 00000000     0        0 31002 1 0000000000000000 20 4 30 10 -1
";

    /// Linux 6.18: /proc/net/tcp6 with one ::1 client socket.
    const LINUX_6_18_TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:9C41 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000     0        0 40001 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn counts_ports_per_pair_with_time_wait_and_skips_listeners() {
        let mut c = PortCounter::default();
        count_ports(LINUX_6_18_TCP, [32768, 60999], &mut c).unwrap();
        count_ports(LINUX_6_18_TCP6, [32768, 60999], &mut c).unwrap();
        let u = c.finish();
        // 0x8CA2 = 36002, 0x8CA4, 0x8CA2 (from .2), 0xB247 = 45639 (the server side), 0x9C41.
        assert_eq!(u.sockets, 5);
        assert_eq!(u.time_wait, 1);
        assert_eq!(u.busiest, 2);
        assert_eq!(
            u.busiest_pair.as_deref(),
            Some("127.0.0.1 → 127.0.0.1:45639")
        );
        assert_eq!(u.pairs, 4);
    }

    #[test]
    fn ports_outside_the_range_are_not_counted() {
        let mut c = PortCounter::default();
        count_ports(LINUX_6_18_TCP, [1024, 2000], &mut c).unwrap();
        assert_eq!(c.finish(), PortUse::default());
        assert_eq!(address(true, 0x01000000), "::1");
        assert_eq!(address(false, 0x0100007F), "127.0.0.1");
    }

    #[test]
    fn bad_text_names_the_line() {
        let mut c = PortCounter::default();
        let e = count_ports("garbage\n", [1, 2], &mut c).unwrap_err();
        assert_eq!(e.line, 1);
        let e = count_ports(
            "  sl  local_address rem_address   st\n   0: 0100007F:ZZZZ 0100007F:B247 01\n",
            [1, 65535],
            &mut c,
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("not hex"), "{e}");
    }
}
