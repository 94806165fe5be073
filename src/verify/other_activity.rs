//! Which sockstat TCP counter can tell this run's sockets from other processes', and the note when they differ.
//!
//! In /proc/net/sockstat's TCP line, `inuse` and `tw` are per network namespace, while
//! `alloc`, `orphan` and `mem` are one host-wide figure whatever namespace reads them
//! (net/ipv4/proc.c `sockstat_seq_show`, Linux 6.x: `sock_prot_inuse_get(net, &tcp_prot)`
//! and `net->ipv4.tcp_death_row` against `proto_sockets_allocated_sum_positive(&tcp_prot)`,
//! `tcp_orphan_count` and `proto_memory_allocated(&tcp_prot)`). So in a namespace of the
//! run's own, `inuse` counts the run's sockets and those of whatever else runs in that
//! namespace, and nothing from the rest of the host; in the shared initial namespace no
//! counter is the run's own, and `alloc` (every TCP socket of the host) is what there is.

use super::measure::Sock;
use crate::units::group;

/// Share of difference (percent) between the counter's growth and this run's sockets beyond
/// which the kernel memory figures are said to include other activity: a few sockets of the
/// host's own (resolvers, exporters) come and go during any run.
pub const OTHER_ACTIVITY_PERCENT: u64 = 5;

/// The sockstat TCP counter a run compares its own sockets with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `alloc`: every TCP socket of the host, all namespaces (the run shares the initial one).
    HostAllocated,
    /// `inuse`: the TCP sockets of the run's own network namespace.
    NamespaceInUse,
}

impl Counter {
    /// `inuse` in a namespace of the run's own, `alloc` in the host's shared one.
    pub fn for_run(netns_shared: bool) -> Counter {
        if netns_shared {
            Counter::HostAllocated
        } else {
            Counter::NamespaceInUse
        }
    }

    fn read(self, s: &Sock) -> u64 {
        match self {
            Counter::HostAllocated => s.tcp_alloc,
            Counter::NamespaceInUse => s.tcp_inuse,
        }
    }

    /// Growth from the baseline to the peak.
    pub fn delta(self, base: &Sock, peak: &Sock) -> i64 {
        self.read(peak) as i64 - self.read(base) as i64
    }

    fn what(self) -> &'static str {
        match self {
            Counter::HostAllocated => "the host's allocated TCP sockets (sockstat alloc)",
            Counter::NamespaceInUse => {
                "the TCP sockets in use in this run's network namespace (sockstat inuse, counted per namespace)"
            }
        }
    }

    fn where_(self) -> &'static str {
        match self {
            Counter::HostAllocated => "",
            Counter::NamespaceInUse => " in this run's network namespace",
        }
    }
}

/// A note when `counter` grew by more (or less) than this run's `reached` connections
/// account for (`per_connection` sockets each): Slab and MemFree are host-wide, so their
/// per-connection figures then include other processes' sockets.
pub fn note(
    counter: Counter,
    delta: Option<i64>,
    reached: u64,
    per_connection: u64,
) -> Option<String> {
    let delta = delta?;
    let expected = (reached * per_connection) as i64;
    let off = (delta - expected).unsigned_abs();
    if reached == 0 || off * 100 <= expected.unsigned_abs() * OTHER_ACTIVITY_PERCENT {
        return None;
    }
    let grew = if delta >= 0 {
        format!("grew by {}", group(delta as u64))
    } else {
        format!("fell by {}", group(delta.unsigned_abs()))
    };
    let (did, way) = if delta > expected {
        ("opened", "overstated")
    } else {
        ("closed", "understated")
    };
    Some(format!(
        "kernel memory per connection includes other activity: {} {grew} from the baseline to the peak, where this run's {} connections account for {} ({} per connection{}); other processes {did} about {} sockets{} meanwhile, so Slab and MemFree per connection are {way}",
        counter.what(),
        group(reached),
        group(expected as u64),
        per_connection,
        if per_connection == 2 { ", both ends on this host" } else { "" },
        group(off),
        counter.where_(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sockstat;

    /// Linux 6.18.44: cat /proc/net/sockstat inside `unshare -n` with lo up, before any socket.
    const NETNS_BASELINE: &str = "sockets: used 0
TCP: inuse 0 orphan 0 tw 0 alloc 8009 mem 298
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";
    /// Linux 6.18.44: the same namespace after one listener and 50 loopback connections
    /// (101 sockets); `alloc` moved by the same 101 only because the host was otherwise quiet.
    const NETNS_PEAK: &str = "sockets: used 101
TCP: inuse 101 orphan 0 tw 0 alloc 8110 mem 298
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";

    fn sock(text: &str) -> Sock {
        Sock::from_sockstat(&sockstat::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn a_namespace_of_its_own_counts_its_sockets_in_use_not_the_hosts_allocated() {
        let (b, p) = (sock(NETNS_BASELINE), sock(NETNS_PEAK));
        assert_eq!(Counter::for_run(false), Counter::NamespaceInUse);
        assert_eq!(Counter::for_run(true), Counter::HostAllocated);
        assert_eq!(Counter::NamespaceInUse.delta(&b, &p), 101);
        // Host-wide alloc would have read the same here, but it is the host's 8,009 + n.
        assert_eq!(Counter::HostAllocated.delta(&b, &p), 101);
        assert_eq!(p.tcp_alloc, 8110);
        // The run's 50 connections, both ends here, are the 100 of 101 (the listener): no note.
        assert_eq!(note(Counter::NamespaceInUse, Some(101), 50, 2), None);
    }

    #[test]
    fn others_in_the_namespace_are_noted_with_the_counter_named() {
        let (b, p) = (sock(NETNS_BASELINE), sock(NETNS_PEAK));
        let d = Counter::NamespaceInUse.delta(&b, &p);
        // A run of 20 connections that the other 61 sockets of that namespace joined.
        let n = note(Counter::NamespaceInUse, Some(d), 20, 2).unwrap();
        assert!(
            n.starts_with("kernel memory per connection includes other activity"),
            "{n}"
        );
        assert!(
            n.contains("sockstat inuse, counted per namespace) grew by 101"),
            "{n}"
        );
        assert!(
            n.contains("20 connections account for 40 (2 per connection, both ends on this host)"),
            "{n}"
        );
        assert!(
            n.contains("opened about 61 sockets in this run's network namespace meanwhile"),
            "{n}"
        );
        assert!(n.ends_with("overstated"), "{n}");
    }

    #[test]
    fn the_shared_namespace_says_host_allocated_and_fewer_is_understated() {
        assert_eq!(note(Counter::HostAllocated, None, 20_000, 2), None);
        assert_eq!(note(Counter::HostAllocated, Some(500), 0, 2), None);
        assert_eq!(note(Counter::HostAllocated, Some(39_000), 20_000, 2), None);
        let n = note(Counter::HostAllocated, Some(-100), 1_000, 1).unwrap();
        assert!(
            n.contains("the host's allocated TCP sockets (sockstat alloc) fell by 100"),
            "{n}"
        );
        assert!(
            n.contains("1,000 connections account for 1,000 (1 per connection)"),
            "{n}"
        );
        assert!(n.contains("closed about 1,100 sockets meanwhile"), "{n}");
        assert!(n.ends_with("understated"), "{n}");
    }
}
