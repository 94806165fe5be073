//! `/proc/net/nf_conntrack`: the namespace's tracked connections, one per line; tune only asks whether one given connection is among them.

use super::ParseError;

/// One entry's original direction: source and destination ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub sport: u16,
    pub dport: u16,
}

/// The original-direction tuple of one entry (`sport=` and `dport=` that come first on the line).
pub fn original(line: &str, n: usize) -> Result<Option<Tuple>, ParseError> {
    let field = |key: &str| -> Result<Option<u16>, ParseError> {
        match line.split_whitespace().find_map(|w| w.strip_prefix(key)) {
            None => Ok(None),
            Some(v) => v
                .parse::<u16>()
                .map(Some)
                .map_err(|_| ParseError::new(n, format!("{key}{v}: not a port"))),
        }
    };
    match (field("sport=")?, field("dport=")?) {
        (Some(sport), Some(dport)) => Ok(Some(Tuple { sport, dport })),
        // icmp and other protocols carry no ports
        _ => Ok(None),
    }
}

/// Is a TCP connection from `sport` to `dport` tracked in this text?
pub fn tracks(text: &str, sport: u16, dport: u16) -> Result<bool, ParseError> {
    for (i, line) in text.lines().enumerate() {
        if !line.split_whitespace().any(|w| w == "tcp") {
            continue;
        }
        if original(line, i + 1)? == Some(Tuple { sport, dport }) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44, a netns with an nft `ct state` rule after one loopback connection: cat /proc/net/nf_conntrack
    const LINUX_6_18: &str = "ipv4     2 tcp      6 432000 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40186 dport=53881 src=127.0.0.1 dst=127.0.0.1 sport=53881 dport=40186 [ASSURED] mark=0 zone=0 use=2\n";

    #[test]
    fn finds_the_connection_by_its_original_ports() {
        assert!(tracks(LINUX_6_18, 40186, 53881).unwrap());
        // the reply direction is not the original one
        assert!(!tracks(LINUX_6_18, 53881, 40186).unwrap());
        assert!(!tracks("", 1, 2).unwrap());
    }

    #[test]
    fn a_bad_port_names_the_line() {
        let e = tracks("ipv4 2 tcp 6 1 ESTABLISHED sport=x dport=1\n", 1, 1).unwrap_err();
        assert_eq!(e.line, 1);
    }
}
