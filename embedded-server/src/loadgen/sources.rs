//! Client source addresses: `--source` ranges, lists and prefixes (IPv4 and IPv6), the automatic
//! loopback choice (127.0.0.2 upwards: all of 127.0.0.0/8 is local), which IPv6 sources need
//! IP_FREEBIND (AnyIP: a local route, not an address), and their assignment to processes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::sys::Errno;

/// Most addresses a `--source` spec may expand to (a typo like 127.0.0.2-127.255.0.0 would
/// otherwise allocate millions). 65,536 sources × 28,232 ports is far past any one host's
/// memory for sockets.
pub const MAX_SOURCES: usize = 65_536;

/// The documentation prefix of RFC 3849 (2001:db8::/32) the fixes use as placeholders.
pub const DOC_PREFIX_V6: &str = "2001:db8:100::/64";

/// A parsed `--source`: the addresses it names, and at most one open prefix, a prefix given
/// without a count that holds more than [`MAX_SOURCES`] host addresses. A run takes from the
/// open prefix as many addresses as it needs ([`Spec::take`]), as it picks loopback sources
/// from 127.0.0.0/8 when no `--source` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The addresses named outright (ranges, lists, prefixes with a count or small enough).
    pub fixed: Vec<IpAddr>,
    pub open: Option<OpenPrefix>,
}

/// A prefix given without a count, too large to take whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPrefix {
    /// As the user wrote it (`2001:db8:100::/64`), for the line saying what was taken.
    pub text: String,
    /// Its first host address (the address given, when it has host bits set).
    pub first: IpAddr,
    /// Host addresses from `first` to the prefix's end.
    pub available: u128,
}

impl Spec {
    /// The family's first address (for choosing the target's family).
    pub fn first(&self) -> Option<IpAddr> {
        self.fixed
            .first()
            .copied()
            .or(self.open.as_ref().map(|o| o.first))
    }

    /// The most addresses this spec can give a run: the fixed ones and, from an open prefix, up
    /// to [`MAX_SOURCES`] in all.
    pub fn most(&self) -> usize {
        self.fixed.len() + self.open_room()
    }

    /// Addresses an open prefix may still give: what it holds, within [`MAX_SOURCES`] in all.
    fn open_room(&self) -> usize {
        self.open.as_ref().map_or(0, |o| {
            let room = MAX_SOURCES - self.fixed.len();
            o.available.min(room as u128) as usize
        })
    }

    /// The addresses for a run that needs `need` of them: every fixed address, then from the
    /// open prefix (at least one) until there are `need`, within what it holds and
    /// [`MAX_SOURCES`].
    pub fn take(&self, need: usize) -> Vec<IpAddr> {
        let mut out = self.fixed.clone();
        if let Some(o) = &self.open {
            let n = need.saturating_sub(out.len()).max(1).min(self.open_room());
            out.extend((0..n as u128).map(|k| offset(o.first, k)));
        }
        out
    }
}

/// Parses `--source`: comma-separated addresses, `A-B` ranges and `PREFIX/LEN[:COUNT]` prefixes,
/// all of one family. A prefix yields COUNT addresses from its first host address (from the
/// address given, when it has host bits set); without COUNT, every host address of a prefix
/// small enough (at most [`MAX_SOURCES`]), else as many as the run needs (an [`OpenPrefix`],
/// one per spec).
pub fn parse_spec(spec: &str) -> Result<Spec, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut open: Option<OpenPrefix> = None;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, count) = if part.contains('/') {
            prefix(part)?
        } else if let Some((a, b)) = part.split_once('-') {
            range(part, a.trim(), b.trim())?
        } else {
            let ip: IpAddr = part.parse().map_err(|_| {
                format!(
                    "--source {part:?}: not an IP address, an A-B range or a PREFIX/LEN:COUNT prefix"
                )
            })?;
            (ip, Count::Exactly(1))
        };
        let family_first = out.first().copied().or(open.as_ref().map(|o| o.first));
        if let Some(other) = family_first.filter(|o| o.is_ipv4() != first.is_ipv4()) {
            return Err(format!(
                "--source {part:?}: mixes IPv4 and IPv6 ({other} came first); a run's sources are of the target's one family"
            ));
        }
        let count = match count {
            Count::Exactly(c) => c,
            Count::AsNeeded(available) => {
                if let Some(o) = &open {
                    return Err(format!(
                        "--source {part:?}: a second prefix without a count ({} came first); give one a count: PREFIX/LEN:COUNT",
                        o.text
                    ));
                }
                open = Some(OpenPrefix {
                    text: part.to_string(),
                    first,
                    available,
                });
                continue;
            }
        };
        if count > (MAX_SOURCES - out.len()) as u128 {
            return Err(format!(
                "--source {part:?}: more than {MAX_SOURCES} addresses in all; give a narrower range or a smaller count"
            ));
        }
        out.extend((0..count).map(|k| offset(first, k)));
    }
    if out.is_empty() && open.is_none() {
        return Err("--source: no address given".into());
    }
    if open.is_some() && out.len() >= MAX_SOURCES {
        return Err(format!(
            "--source {spec:?}: more than {MAX_SOURCES} addresses in all; give a narrower range or a smaller count"
        ));
    }
    Ok(Spec { fixed: out, open })
}

/// Every address `spec` may give a run: [`parse_spec`]'s, with an open prefix taken as far as
/// it can be ([`Spec::most`]).
pub fn parse(spec: &str) -> Result<Vec<IpAddr>, String> {
    let s = parse_spec(spec)?;
    Ok(s.take(s.most()))
}

/// How many addresses a part gives: a number, or as many as the run needs (a prefix without
/// a count holding more than [`MAX_SOURCES`]; the figure is what it holds from its first).
enum Count {
    Exactly(u128),
    AsNeeded(u128),
}

/// An address as a number and back (IPv4 in the low 32 bits).
fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn offset(base: IpAddr, k: u128) -> IpAddr {
    match base {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from((u32::from(a) as u128 + k) as u32)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + k)),
    }
}

/// `A-B`: the first address and the count.
fn range(part: &str, a: &str, b: &str) -> Result<(IpAddr, Count), String> {
    let parse = |s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| format!("--source {part:?}: {s:?} is not an IP address"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a.is_ipv4() != b.is_ipv4() {
        return Err(format!(
            "--source {part:?}: a range runs between two addresses of one family"
        ));
    }
    if num(b) < num(a) {
        return Err(format!("--source {part:?}: the range runs backwards"));
    }
    let count = (num(b) - num(a)).saturating_add(1);
    if count > MAX_SOURCES as u128 {
        return Err(format!(
            "--source {part:?}: more than {MAX_SOURCES} addresses; give a narrower range"
        ));
    }
    Ok((a, Count::Exactly(count)))
}

/// `PREFIX/LEN[:COUNT]`: the first address and the count.
fn prefix(part: &str) -> Result<(IpAddr, Count), String> {
    let (addr, rest) = part.split_once('/').unwrap_or((part, ""));
    let (len, count) = match rest.split_once(':') {
        Some((l, c)) => (l, Some(c)),
        None => (rest, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| {
        format!("--source {part:?}: {addr:?} is not an IP address (expected PREFIX/LEN:COUNT, like {DOC_PREFIX_V6}:1000)")
    })?;
    let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = len
        .trim()
        .parse()
        .ok()
        .filter(|l| *l <= bits)
        .ok_or_else(|| format!("--source {part:?}: the prefix length {len:?} is not 0-{bits}"))?;
    let host_bits = bits - len;
    // Host addresses of the prefix: all but the prefix's own address (the IPv6 subnet-router
    // anycast address, the IPv4 network address) and, for IPv4, the broadcast address.
    let span: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let base = num(ip) & !span;
    let last = base + span - u128::from(ip.is_ipv4() && host_bits >= 2);
    let first = if num(ip) == base && host_bits >= 1 {
        base + 1
    } else {
        num(ip)
    };
    let available = last.saturating_sub(first) + 1;
    let count = match count {
        Some(c) => c
            .trim()
            .parse::<u128>()
            .ok()
            .filter(|c| *c >= 1)
            .ok_or_else(|| {
                format!(
                    "--source {part:?}: the count {c:?} is not a number of addresses (1 or more)"
                )
            })?,
        None if available <= MAX_SOURCES as u128 => available,
        None => return Ok((offset(ip, first - num(ip)), Count::AsNeeded(available))),
    };
    if count > available {
        return Err(format!(
            "--source {part:?}: {count} addresses from {} do not fit in the prefix ({available} left)",
            offset(ip, first - num(ip))
        ));
    }
    Ok((offset(ip, first - num(ip)), Count::Exactly(count)))
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

/// RTF_LOCAL in the flags column of /proc/net/ipv6_route (include/uapi/linux/ipv6_route.h):
/// a route of type `local`, set by `ip -6 route add local PREFIX dev lo`.
const RTF_LOCAL: u32 = 0x8000_0000;

/// An IPv6 prefix routed locally (AnyIP): every address in it is this host's, but only a socket
/// with IP_FREEBIND may bind one (IPv6 bind() accepts assigned addresses only, unlike IPv4's,
/// which accepts any address of a local route; net/ipv6/af_inet6.c, Linux 6.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnyIp {
    pub net: Ipv6Addr,
    pub len: u8,
}

impl AnyIp {
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let shift = 128 - u32::from(self.len);
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        u128::from(ip) & mask == u128::from(self.net) & mask
    }
}

/// The AnyIP prefixes in the text of /proc/net/ipv6_route: local routes shorter than /128 (a
/// /128 local route is an assigned address, which binds without IP_FREEBIND). Lines that do not
/// parse are skipped: the file lists every table's routes, one per line, in fixed columns
/// (destination, its length in hex, source, its length, next hop, metric, refcount, use,
/// flags, device).
pub fn anyip_routes(ipv6_route: &str) -> Vec<AnyIp> {
    let mut out = Vec::new();
    for line in ipv6_route.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Ok(net), Ok(len), Ok(flags)) = (
            u128::from_str_radix(f[0], 16),
            u8::from_str_radix(f[1], 16),
            u32::from_str_radix(f[8], 16),
        ) else {
            continue;
        };
        if flags & RTF_LOCAL != 0 && len < 128 {
            let r = AnyIp {
                net: Ipv6Addr::from(net),
                len,
            };
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Whether a client socket binding `ip` needs IP_FREEBIND: an IPv6 address inside an AnyIP
/// prefix. IPv4 never does (its bind() accepts addresses of local routes).
pub fn needs_freebind(ip: IpAddr, routes: &[AnyIp]) -> bool {
    match ip {
        IpAddr::V4(_) => false,
        IpAddr::V6(a) => routes.iter().any(|r| r.contains(a)),
    }
}

/// [`needs_freebind`] for each of `all`, against this network namespace's routes (read once;
/// no IPv6 routes readable: none needs it).
pub fn freebind_flags(all: &[IpAddr]) -> Vec<bool> {
    let routes = if all.iter().any(IpAddr::is_ipv6) {
        crate::sys::net::ipv6_routes()
            .map(|t| anyip_routes(&t))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    all.iter().map(|ip| needs_freebind(*ip, &routes)).collect()
}

/// Whether a client socket can bind to `ip` (`Err(EADDRNOTAVAIL)`: not an address of this host);
/// see [`crate::sys::net::probe_source`].
pub use crate::sys::net::probe_source as probe;

/// The addresses of `all` a client socket cannot bind, with the error: every one is probed
/// ([`probe`], with IP_FREEBIND where [`freebind_flags`] says so) before any load worker
/// starts, so that a typo or an address of another host is refused up front instead of showing
/// up as EADDRNOTAVAIL on every connect (which reads like running out of ports).
pub fn unbindable(all: &[IpAddr]) -> Vec<(IpAddr, Errno)> {
    all.iter()
        .zip(freebind_flags(all))
        .filter_map(|(ip, fb)| probe(*ip, fb).err().map(|e| (*ip, e)))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_and_lists() {
        let v = parse("127.0.0.2-127.0.0.4, 10.0.0.1").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[2], ip("127.0.0.4"));
        assert_eq!(v[3], ip("10.0.0.1"));
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
    fn ipv6_ranges_lists_and_prefixes() {
        let v = parse("2001:db8:100::1-2001:db8:100::3,2001:db8:100::ff").unwrap();
        assert_eq!(
            v,
            [
                "2001:db8:100::1",
                "2001:db8:100::2",
                "2001:db8:100::3",
                "2001:db8:100::ff"
            ]
            .map(ip)
        );
        // A prefix with a count starts at its first host address ...
        let v = parse("2001:db8:100::/64:300").unwrap();
        assert_eq!(v.len(), 300);
        assert_eq!(v[0], ip("2001:db8:100::1"));
        assert_eq!(v[299], ip("2001:db8:100::12c"));
        // ... or at the address given, when it has host bits.
        assert_eq!(
            parse("2001:db8:100::10/64:2").unwrap()[1],
            ip("2001:db8:100::11")
        );
        // Small prefixes need no count; IPv4 ones skip network and broadcast.
        assert_eq!(parse("2001:db8::/126").unwrap().len(), 3);
        let v4 = parse("10.1.2.0/30").unwrap();
        assert_eq!(v4, vec![ip("10.1.2.1"), ip("10.1.2.2")]);
        assert_eq!(parse("10.1.2.3/32").unwrap(), vec![ip("10.1.2.3")]);
    }

    /// Issue 24: a prefix without a count that holds more than MAX_SOURCES is taken as far as
    /// the run needs, as 127.0.0.0/8 is when no --source is given.
    #[test]
    fn a_large_prefix_without_a_count_gives_what_the_run_needs() {
        let s = parse_spec("2001:db8:100::/64").unwrap();
        assert!(s.fixed.is_empty());
        assert_eq!(s.first(), Some(ip("2001:db8:100::1")));
        assert_eq!(s.most(), MAX_SOURCES);
        let v = s.take(3);
        assert_eq!(
            v,
            vec![
                ip("2001:db8:100::1"),
                ip("2001:db8:100::2"),
                ip("2001:db8:100::3")
            ]
        );
        assert_eq!(s.take(0).len(), 1, "at least one");
        assert_eq!(s.take(usize::MAX).len(), MAX_SOURCES, "at most MAX_SOURCES");
        assert_eq!(parse("2001:db8:100::/64").unwrap().len(), MAX_SOURCES);
        // From the address given; fixed addresses first, the prefix tops up to what is needed.
        let s = parse_spec("2001:db8:200::1, 2001:db8:100::10/64").unwrap();
        assert_eq!(
            s.take(3),
            vec![
                ip("2001:db8:200::1"),
                ip("2001:db8:100::10"),
                ip("2001:db8:100::11")
            ]
        );
        assert_eq!(s.most(), MAX_SOURCES);
        // 127.0.0.0/8 from 127.0.0.2 (network address skipped, broadcast excluded).
        let s = parse_spec("127.0.0.1/8").unwrap();
        assert_eq!(s.take(2), vec![ip("127.0.0.1"), ip("127.0.0.2")]);
        let e = parse_spec("2001:db8:100::/64, 2001:db8:200::/64").unwrap_err();
        assert!(e.contains("a second prefix without a count"), "{e}");
        let e = parse_spec("2001:db8:100::/64, 10.0.0.0/8").unwrap_err();
        assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
    }

    #[test]
    fn bad_ipv6_specs_say_what_to_give() {
        let e = parse("2001:db8:100::/64:100000").unwrap_err();
        assert!(e.contains("more than 65536"), "{e}");
        let e = parse("2001:db8:100::/126:5").unwrap_err();
        assert!(e.contains("do not fit"), "{e}");
        assert!(parse("2001:db8::/129:1").unwrap_err().contains("0-128"));
        assert!(parse("2001:db8::/64:0").unwrap_err().contains("1 or more"));
        let e = parse("127.0.0.2,::1").unwrap_err();
        assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
        assert!(parse("127.0.0.2-::5").unwrap_err().contains("one family"));
        assert!(parse("2001:db8::5-2001:db8::1")
            .unwrap_err()
            .contains("backwards"));
        let e = parse("2001:db8::-2001:db8::1:0").unwrap_err();
        assert!(e.contains("narrower"), "{e}");
    }

    /// /proc/net/ipv6_route of a fresh network namespace after `ip link set lo up`,
    /// `ip -6 route add local 2001:db8:100::/64 dev lo` and `ip -6 addr add 2001:db8:200::1/64
    /// dev lo` (Linux 6.18.44).
    const IPV6_ROUTE_6_18: &str = "\
20010db8020000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
20010db8010000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000002 00000000 80000001       lo
20010db8020000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn anyip_prefixes_from_the_route_table() {
        let r = anyip_routes(IPV6_ROUTE_6_18);
        assert_eq!(
            r,
            vec![AnyIp {
                net: "2001:db8:100::".parse().unwrap(),
                len: 64
            }]
        );
        assert!(needs_freebind(ip("2001:db8:100::7"), &r));
        assert!(needs_freebind(ip("2001:db8:100:0:ffff::1"), &r));
        // An assigned address, ::1, another prefix and IPv4 bind without it.
        assert!(!needs_freebind(ip("2001:db8:200::1"), &r));
        assert!(!needs_freebind(ip("::1"), &r));
        assert!(!needs_freebind(ip("2001:db8:101::1"), &r));
        assert!(!needs_freebind(ip("127.0.0.2"), &r));
        assert!(anyip_routes("garbage\n\n1 2 3").is_empty());
        let all = AnyIp {
            net: Ipv6Addr::UNSPECIFIED,
            len: 0,
        };
        assert!(all.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn loopback_skips_network_and_broadcast_octets() {
        let v = loopback(300);
        assert_eq!(v[0], ip("127.0.0.2"));
        assert_eq!(v[252], ip("127.0.0.254"));
        assert_eq!(v[253], ip("127.0.1.1"));
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
        assert_eq!(probe(ip("127.0.0.1"), false), Ok(()));
        assert_eq!(probe(ip("127.0.3.7"), false), Ok(()));
        let bad = ip("192.0.2.1");
        assert_eq!(probe(bad, false), Err(Errno::EADDRNOTAVAIL));
        let v = unbindable(&[loopback(1)[0], bad]);
        assert_eq!(v, vec![(bad, Errno::EADDRNOTAVAIL)]);
        // A documentation address is not this host's, and without an AnyIP route it is not
        // probed with IP_FREEBIND.
        let doc = ip("2001:db8:ffff::1");
        if probe(ip("::1"), false).is_ok() {
            assert_eq!(unbindable(&[doc]), vec![(doc, Errno::EADDRNOTAVAIL)]);
        }
    }
}
