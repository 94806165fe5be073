//! `/proc/slabinfo` (version 2.1): kernel object caches, and from them the kernel memory one TCP socket costs.
//!
//! An established, idle TCP socket held by an epoll server costs one object in
//! each of these caches: `TCP` (the socket), `sock_inode_cache` (its inode),
//! `filp` (the open file), `dentry` (its name), `eventpoll_epi` and
//! `eventpoll_pwq` (its epoll registration). The cost of an object is what its
//! slab spends on it: `pagesperslab * 4096 / objperslab`, a little more than
//! `objsize`. A cache the kernel merged into another (eventpoll_pwq into a
//! kmalloc cache on Linux 6.18) is not listed and is covered by
//! [`OTHER_BYTES_PER_SOCKET`].
//!
//! Reading /proc/slabinfo needs root; when it is unreadable the estimate falls
//! back to [`DEFAULT_BYTES_PER_SOCKET`].

use super::{number, ParseError};

/// One cache's line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlabCache {
    pub name: String,
    pub active_objs: u64,
    pub num_objs: u64,
    /// Bytes per object as the allocator sees it.
    pub objsize: u64,
    pub objperslab: u64,
    pub pagesperslab: u64,
}

/// Page size the slab figures are counted in (x86_64, arm64 with 4 KiB pages).
pub const PAGE_SIZE: u64 = 4096;

/// Most pages one slab may span. A slab is one compound page of at most 2^MAX_PAGE_ORDER pages
/// (1,024 on x86_64); 65,536 leaves room for any configuration and keeps
/// `pagesperslab * PAGE_SIZE` (at most 2^28) far from overflowing. A larger figure is not a
/// kernel's: the line is refused (found by fuzzing the parser).
pub const MAX_PAGES_PER_SLAB: u64 = 1 << 16;

/// Most bytes one cache may hold: 2^50 (1 PiB), more memory than any host has, so that
/// `num_objs * bytes_per_object` and the sums over caches stay inside u64.
pub const MAX_CACHE_BYTES: u64 = 1 << 50;

impl SlabCache {
    /// Bytes of slab memory one object takes, the slab's waste shared out: `pagesperslab * PAGE_SIZE / objperslab`.
    pub fn bytes_per_object(&self) -> u64 {
        if self.objperslab == 0 {
            return self.objsize;
        }
        // Checked: parse refuses slabs past MAX_PAGES_PER_SLAB, but a hand-built cache may hold anything.
        self.pagesperslab
            .checked_mul(PAGE_SIZE)
            .map_or(u64::MAX, |b| b.div_ceil(self.objperslab))
    }

    /// Bytes the whole cache holds now (saturating; parse keeps it under [`MAX_CACHE_BYTES`]).
    pub fn bytes_total(&self) -> u64 {
        self.num_objs.saturating_mul(self.bytes_per_object())
    }

    /// Why this line cannot be a kernel's, if it cannot: a slab larger than any kernel makes, or
    /// a cache larger than any host's memory.
    fn absurd(&self) -> Option<String> {
        if self.pagesperslab > MAX_PAGES_PER_SLAB {
            return Some(format!(
                "{}: {} pages per slab is more than any kernel uses (at most {MAX_PAGES_PER_SLAB})",
                self.name, self.pagesperslab
            ));
        }
        match self.num_objs.checked_mul(self.bytes_per_object()) {
            Some(b) if b <= MAX_CACHE_BYTES => None,
            _ => Some(format!(
                "{}: {} objects of {} bytes is more memory than any host has (at most {MAX_CACHE_BYTES} bytes per cache)",
                self.name,
                self.num_objs,
                self.bytes_per_object()
            )),
        }
    }
}

/// The caches one established TCP socket held in epoll uses, one object each.
pub const SOCKET_CACHES: &[&str] = &[
    "TCP",
    "sock_inode_cache",
    "filp",
    "dentry",
    "eventpoll_epi",
    "eventpoll_pwq",
];

/// Small allocations per socket outside the listed caches (eventpoll_pwq merged into kmalloc,
/// the socket's wait queue, security blobs): the gap between the sum of the listed caches
/// (about 3.9 KB per socket) and the 8.3 KB per connection pair measured at 1,000,000 loopback
/// pairs on Linux 6.18 (docs: shared host facts, slab growth divided by pairs).
pub const OTHER_BYTES_PER_SOCKET: u64 = 256;

/// Kernel memory per socket when /proc/slabinfo cannot be read: 10.1 KB per pair measured at
/// 1,000,000 loopback pairs on Linux 6.18 (including ~1.8 KB per fd that a /proc/PID/fd scanner
/// adds), i.e. ~5 KB per socket, rounded up to 5 KiB.
pub const DEFAULT_BYTES_PER_SOCKET: u64 = 5120;

/// What one socket costs, cache by cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SocketCost {
    /// (cache, bytes per object) for each listed cache found.
    pub parts: Vec<(String, u64)>,
    /// Listed caches not found (merged into others); covered by the allowance.
    pub missing: Vec<String>,
    /// [`OTHER_BYTES_PER_SOCKET`].
    pub other: u64,
    pub total: u64,
}

impl SocketCost {
    /// The sum as text: "TCP 2521 + sock_inode_cache 863 + ... + other 256 = 4159 B".
    pub fn arithmetic(&self) -> String {
        let mut s: Vec<String> = self.parts.iter().map(|(n, b)| format!("{n} {b}")).collect();
        s.push(format!("other {}", self.other));
        format!("{} = {} B per socket", s.join(" + "), self.total)
    }
}

/// The per-socket cost from parsed caches.
pub fn socket_cost(caches: &[SlabCache]) -> SocketCost {
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    for name in SOCKET_CACHES {
        match caches.iter().find(|c| c.name == *name) {
            Some(c) => parts.push((c.name.clone(), c.bytes_per_object())),
            None => missing.push(name.to_string()),
        }
    }
    // Saturating: parsed caches are bounded (MAX_PAGES_PER_SLAB), hand-built ones may not be.
    let total = parts
        .iter()
        .fold(OTHER_BYTES_PER_SOCKET, |sum, (_, b)| sum.saturating_add(*b));
    SocketCost {
        parts,
        missing,
        other: OTHER_BYTES_PER_SOCKET,
        total,
    }
}

pub fn parse(text: &str) -> Result<Vec<SlabCache>, ParseError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, l)) if l.trim() == "slabinfo - version: 2.1" => {}
        Some((_, l)) => {
            return Err(ParseError::new(
                1,
                format!("expected \"slabinfo - version: 2.1\", found {l:?}"),
            ))
        }
        None => return Err(ParseError::new(1, "empty slabinfo")),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 6 {
            return Err(ParseError::new(
                n,
                format!("expected name and five numbers, found {line:?}"),
            ));
        }
        let cache = SlabCache {
            name: words[0].to_string(),
            active_objs: number(n, words[1])?,
            num_objs: number(n, words[2])?,
            objsize: number(n, words[3])?,
            objperslab: number(n, words[4])?,
            pagesperslab: number(n, words[5])?,
        };
        if let Some(why) = cache.absurd() {
            return Err(ParseError::new(n, why));
        }
        out.push(cache);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44: the header and selected lines of /proc/slabinfo (idle host)
    const LINUX_6_18: &str = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCPv6                 13     13   2496   13    8 : tunables    0    0    0 : slabdata      1      1      0
nf_conntrack           0      0    256   16    1 : tunables    0    0    0 : slabdata      0      0      0
UDP                   24     24   1344   12    4 : tunables    0    0    0 : slabdata      2      2      0
tw_sock_TCP           32     32    256   16    1 : tunables    0    0    0 : slabdata      2      2      0
request_sock_TCP      24     24    320   12    1 : tunables    0    0    0 : slabdata      2      2      0
TCP                   26     26   2368   13    8 : tunables    0    0    0 : slabdata      2      2      0
eventpoll_epi        256    256    128   32    1 : tunables    0    0    0 : slabdata      8      8      0
sock_inode_cache      95     95    832   19    4 : tunables    0    0    0 : slabdata      5      5      0
filp                 588    588    192   21    1 : tunables    0    0    0 : slabdata     28     28      0
dentry             59045  59598    192   21    1 : tunables    0    0    0 : slabdata   2838   2838      0
kmalloc-64          1727   1984     64   64    1 : tunables    0    0    0 : slabdata     31     31      0
kmalloc-192         3507   3507    192   21    1 : tunables    0    0    0 : slabdata    167    167      0
";

    #[test]
    fn parses_linux_6_18() {
        let caches = parse(LINUX_6_18).unwrap();
        assert_eq!(caches.len(), 12);
        let tcp = caches.iter().find(|c| c.name == "TCP").unwrap();
        assert_eq!((tcp.active_objs, tcp.num_objs, tcp.objsize), (26, 26, 2368));
        assert_eq!((tcp.objperslab, tcp.pagesperslab), (13, 8));
        // 8 pages of 4096 shared by 13 sockets
        assert_eq!(tcp.bytes_per_object(), 2521);
        let dentry = caches.iter().find(|c| c.name == "dentry").unwrap();
        assert_eq!(dentry.num_objs, 59598);
        assert_eq!(dentry.bytes_total(), 59598 * 196);
    }

    #[test]
    fn socket_cost_on_linux_6_18() {
        let cost = socket_cost(&parse(LINUX_6_18).unwrap());
        // TCP 2521 + sock_inode_cache 863 + filp 196 + dentry 196 + eventpoll_epi 128 + other 256
        assert_eq!(
            cost.total,
            2521 + 863 + 196 + 196 + 128 + OTHER_BYTES_PER_SOCKET
        );
        assert_eq!(cost.missing, vec!["eventpoll_pwq".to_string()]);
        assert!(
            cost.arithmetic()
                .starts_with("TCP 2521 + sock_inode_cache 863"),
            "{}",
            cost.arithmetic()
        );
        // A pair costs about the 8.3 KB per pair measured at 1M loopback pairs on this kernel.
        assert!((8000..8600).contains(&(2 * cost.total)), "{}", cost.total);
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        assert!(parse("slabinfo - version: 1.1\n")
            .unwrap_err()
            .problem
            .contains("2.1"));
        assert!(parse("").is_err());
        let e = parse("slabinfo - version: 2.1\nTCP 1 2 x 4 5 : tunables\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("slabinfo - version: 2.1\nTCP 1 2\n").is_err());
    }

    /// The fuzzer's input (issue 11): `pagesperslab * PAGE_SIZE` overflowed u64 in
    /// bytes_per_object, and the sum in socket_cost overflowed with it.
    const FUZZ_OVERFLOW: &str = "slabinfo - version: 2.1
TCP 1 1 2368 13 18446744073709551615 : tunables 0 0 0 : slabdata 1 1 0
";

    #[test]
    fn absurd_values_are_refused_not_overflowed() {
        let e = parse(FUZZ_OVERFLOW).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.problem
                .contains("TCP: 18446744073709551615 pages per slab"),
            "{e}"
        );
        // Too many objects for any memory.
        let e =
            parse("slabinfo - version: 2.1\nfilp 1 18446744073709551615 192 21 1\n").unwrap_err();
        assert!(e.problem.contains("more memory than any host has"), "{e}");
        // Hand-built values saturate instead of panicking.
        let huge = SlabCache {
            name: "TCP".into(),
            active_objs: u64::MAX,
            num_objs: u64::MAX,
            objsize: u64::MAX,
            objperslab: 1,
            pagesperslab: u64::MAX,
        };
        assert_eq!(huge.bytes_per_object(), u64::MAX);
        assert_eq!(huge.bytes_total(), u64::MAX);
        let cost = socket_cost(&[
            huge.clone(),
            SlabCache {
                name: "filp".into(),
                ..huge
            },
        ]);
        assert_eq!(cost.total, u64::MAX);
    }
}
