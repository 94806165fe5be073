//! `/proc/net/sockstat` (and sockstat6): sockets in use per protocol, TCP orphans, TIME_WAIT and TCP buffer pages.

use std::collections::BTreeMap;

use super::{number, ParseError};

/// One `PROTO: key value key value ...` line per protocol, plus typed access to the TCP line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sockstat {
    /// Protocol (`sockets`, `TCP`, `UDP`, `FRAG`, ...) to its counters in file order.
    pub protocols: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The `TCP:` line: what TCP holds host-wide (inuse is per network namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TcpStat {
    /// Sockets in use (listening and connected) in this namespace.
    pub inuse: u64,
    /// Closed by their process, still closing (capped by tcp_max_orphans).
    pub orphan: u64,
    /// In TIME_WAIT (capped by tcp_max_tw_buckets).
    pub tw: u64,
    /// Allocated TCP sockets host-wide, including orphans and TIME_WAIT.
    pub alloc: u64,
    /// Pages of buffer memory TCP holds now: compare with tcp_mem.
    pub mem_pages: u64,
}

impl Sockstat {
    pub fn get(&self, proto: &str, key: &str) -> Option<u64> {
        self.protocols.get(proto)?.get(key).copied()
    }

    /// The `sockets: used N` figure.
    pub fn sockets_used(&self) -> Option<u64> {
        self.get("sockets", "used")
    }

    pub fn tcp(&self) -> Option<TcpStat> {
        Some(TcpStat {
            inuse: self.get("TCP", "inuse")?,
            orphan: self.get("TCP", "orphan")?,
            tw: self.get("TCP", "tw")?,
            alloc: self.get("TCP", "alloc")?,
            mem_pages: self.get("TCP", "mem")?,
        })
    }
}

pub fn parse(text: &str) -> Result<Sockstat, ParseError> {
    let mut out = Sockstat::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (proto, rest) = line.split_once(':').ok_or_else(|| {
            ParseError::new(
                n,
                format!("expected \"PROTO: key value ...\", found {line:?}"),
            )
        })?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() % 2 != 0 {
            return Err(ParseError::new(
                n,
                format!("odd number of words after {proto}:"),
            ));
        }
        let mut counters = BTreeMap::new();
        for pair in words.chunks(2) {
            counters.insert(pair[0].to_string(), number(n, pair[1])?);
        }
        out.protocols.insert(proto.trim().to_string(), counters);
    }
    if out.protocols.is_empty() {
        return Err(ParseError::new(1, "empty sockstat"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44: cat /proc/net/sockstat (initial network namespace, idle host)
    const LINUX_6_18: &str = "sockets: used 13
TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 29
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";

    /// Linux 6.18.44: cat /proc/net/sockstat inside `unshare -n` (a fresh namespace: no sockets of its own,
    /// but alloc and mem are host-wide)
    const LINUX_6_18_NETNS: &str = "sockets: used 0
TCP: inuse 0 orphan 0 tw 0 alloc 1 mem 29
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";

    #[test]
    fn parses_linux_6_18() {
        let s = parse(LINUX_6_18).unwrap();
        assert_eq!(s.sockets_used(), Some(13));
        assert_eq!(
            s.tcp(),
            Some(TcpStat {
                inuse: 1,
                orphan: 0,
                tw: 0,
                alloc: 1,
                mem_pages: 29
            })
        );
        assert_eq!(s.get("FRAG", "memory"), Some(0));
        assert_eq!(s.get("UDP", "mem"), Some(0));
    }

    #[test]
    fn parses_linux_6_18_in_a_namespace() {
        let s = parse(LINUX_6_18_NETNS).unwrap();
        assert_eq!(s.sockets_used(), Some(0));
        assert_eq!(s.tcp().unwrap().inuse, 0);
        assert_eq!(s.tcp().unwrap().alloc, 1);
    }

    /// Linux 6.18.44: cat /proc/net/sockstat6
    #[test]
    fn parses_sockstat6() {
        let s = parse("TCP6: inuse 0\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n").unwrap();
        assert_eq!(s.get("TCP6", "inuse"), Some(0));
        assert_eq!(s.tcp(), None);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse("TCP: inuse x").unwrap_err().line, 1);
        assert!(parse("sockets: used 1\nTCP inuse 1")
            .unwrap_err()
            .problem
            .contains("PROTO"));
        assert!(parse("TCP: inuse").is_err());
        assert!(parse("").is_err());
    }
}
