//! The kernel counters that show a knob running short: which /proc/net/netstat counter points at which knob.

use super::KnobId;

/// One counter of `/proc/net/netstat` (group and name as the kernel prints them) and the knob it points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCounter {
    pub group: &'static str,
    pub name: &'static str,
    pub knob: KnobId,
}

const fn tcp_ext(name: &'static str, knob: KnobId) -> LimitCounter {
    LimitCounter {
        group: "TcpExt",
        name,
        knob,
    }
}

/// The TcpExt counters that mean a connection limit was hit, with the knob each points at.
pub const LIMIT_COUNTERS: &[LimitCounter] = &[
    tcp_ext("ListenOverflows", KnobId::Somaxconn),
    tcp_ext("ListenDrops", KnobId::TcpMaxSynBacklog),
    tcp_ext("TCPMemoryPressures", KnobId::TcpMem),
    tcp_ext("TCPAbortOnMemory", KnobId::TcpMem),
    tcp_ext("TCPTimeWaitOverflow", KnobId::TcpMaxTwBuckets),
    tcp_ext("TCPReqQFullDrop", KnobId::TcpMaxSynBacklog),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::netstat;

    /// Linux 6.18.44: the TcpExt lines of /proc/net/netstat, cut to the limit counters.
    const LINUX_6_18_TCPEXT: &str = "TcpExt: ListenOverflows ListenDrops TCPMemoryPressures TCPAbortOnMemory TCPTimeWaitOverflow TCPReqQFullDrop
TcpExt: 0 0 0 0 0 0
";

    #[test]
    fn every_counter_exists_on_6_18() {
        let n = netstat::parse(LINUX_6_18_TCPEXT).unwrap();
        for c in LIMIT_COUNTERS {
            assert!(
                n.get(c.group, c.name).is_some(),
                "{} {} missing on 6.18",
                c.group,
                c.name
            );
        }
    }
}
