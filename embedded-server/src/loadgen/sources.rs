//! Client source addresses: `--source` ranges and lists, the automatic loopback choice
//! (127.0.0.2 upwards: all of 127.0.0.0/8 is local), and their assignment to processes.

use std::net::{IpAddr, Ipv4Addr};

use crate::sys::Errno;

/// Most addresses a `--source` range may expand to (a typo like 127.0.0.2-127.255.0.0 would
/// otherwise allocate millions).
pub const MAX_SOURCES: usize = 65_536;

/// Parses `--source`: comma-separated addresses or `A-B` ranges (IPv4 ranges only).
pub fn parse(spec: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| {
                format!("--source {part:?}: {a:?} is not an IPv4 address (ranges are IPv4 only)")
            })?;
            let b: Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| format!("--source {part:?}: {b:?} is not an IPv4 address"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a {
                return Err(format!("--source {part:?}: the range runs backwards"));
            }
            if (b - a) as usize + out.len() >= MAX_SOURCES {
                return Err(format!(
                    "--source {part:?}: more than {MAX_SOURCES} addresses; give a narrower range"
                ));
            }
            out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
        } else {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| format!("--source {part:?}: not an IP address or A-B range"))?;
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err("--source: no address given".into());
    }
    Ok(out)
}

/// `count` loopback source addresses from 127.0.0.2 upwards, skipping `.0` and `.255` in the
/// last octet and 127.0.0.1 (the usual server address).
pub fn loopback(count: usize) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(count);
    let mut x = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    let end = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    while out.len() < count && x <= end {
        let last = x & 0xff;
        if last != 0 && last != 255 {
            out.push(IpAddr::V4(Ipv4Addr::from(x)));
        }
        x += 1;
    }
    out
}

/// The addresses process `i` of `n` binds to, rotating through them per connection: its share
/// of `all` when there are at least as many addresses as processes (disjoint, so no two
/// processes compete for one address's ports), else one shared address.
pub fn assign(all: &[IpAddr], i: usize, n: usize) -> Vec<IpAddr> {
    if all.is_empty() {
        return Vec::new();
    }
    if all.len() >= n {
        all.iter().skip(i).step_by(n).copied().collect()
    } else {
        vec![all[i % all.len()]]
    }
}

/// Whether a client socket can bind to `ip` (`Err(EADDRNOTAVAIL)`: not an address of this host);
/// see [`crate::sys::net::probe_source`].
pub use crate::sys::net::probe_source as probe;

/// The addresses of `all` a client socket cannot bind, with the error: every one is probed
/// ([`probe`]) before any load worker starts, so that a typo or an address of another host is
/// refused up front instead of showing up as EADDRNOTAVAIL on every connect (which reads like
/// running out of ports).
pub fn unbindable(all: &[IpAddr]) -> Vec<(IpAddr, Errno)> {
    all.iter()
        .filter_map(|ip| probe(*ip).err().map(|e| (*ip, e)))
        .collect()
}

/// "127.0.0.2-127.0.0.9" style summary of a list (first-last and count).
pub fn describe(all: &[IpAddr]) -> String {
    match all {
        [] => "chosen by the kernel".into(),
        [one] => one.to_string(),
        [first, .., last] => format!("{} addresses, {first} .. {last}", all.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists() {
        let v = parse("127.0.0.2-127.0.0.4, 10.0.0.1").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[2], "127.0.0.4".parse::<IpAddr>().unwrap());
        assert_eq!(v[3], "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(parse("127.0.0.9-127.0.0.2")
            .unwrap_err()
            .contains("backwards"));
        assert!(parse("127.0.0.1-127.255.255.255")
            .unwrap_err()
            .contains("narrower"));
        assert!(parse("nope").unwrap_err().contains("not an IP"));
        assert!(parse(" , ").is_err());
    }

    #[test]
    fn loopback_skips_network_and_broadcast_octets() {
        let v = loopback(300);
        assert_eq!(v[0], "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(v[252], "127.0.0.254".parse::<IpAddr>().unwrap());
        assert_eq!(v[253], "127.0.1.1".parse::<IpAddr>().unwrap());
        assert!(v.iter().all(|ip| !ip.to_string().ends_with(".255")));
    }

    #[test]
    fn assignment_is_disjoint_or_shared() {
        let all = loopback(6);
        let a0 = assign(&all, 0, 3);
        let a1 = assign(&all, 1, 3);
        assert_eq!(a0, vec![all[0], all[3]]);
        assert_eq!(a1, vec![all[1], all[4]]);
        let one = loopback(1);
        assert_eq!(assign(&one, 2, 3), one);
        assert!(assign(&[], 0, 1).is_empty());
        assert_eq!(describe(&all), "6 addresses, 127.0.0.2 .. 127.0.0.7");
    }

    #[test]
    fn probes_tell_local_addresses_from_others() {
        // All of 127.0.0.0/8 is local (when lo is up, as in the host namespace); 192.0.2.1 is
        // TEST-NET-1 (RFC 5737), never assigned to a host we test on.
        assert_eq!(probe("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(probe("127.0.3.7".parse().unwrap()), Ok(()));
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(probe(bad), Err(Errno::EADDRNOTAVAIL));
        let v = unbindable(&[loopback(1)[0], bad]);
        assert_eq!(v, vec![(bad, Errno::EADDRNOTAVAIL)]);
    }
}
