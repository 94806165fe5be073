//! Typed knob ids: the one way code outside the registry names a knob.
//!
//! Every [`KnobId`] has exactly one entry in [`REGISTRY`](super::REGISTRY), at the index of its
//! discriminant (checked at compile time in `registry.rs`), so `id.knob()` is an array index and
//! a misspelt knob name is a compile error instead of a silent `None`.

use std::fmt;

use super::{Knob, REGISTRY};

/// One knob of the registry, in the order `check` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KnobId {
    /// `rlimit.nofile.soft`
    NofileSoft,
    /// `rlimit.nofile.hard`
    NofileHard,
    /// `fs.nr_open`
    NrOpen,
    /// `fs.file-max`
    FileMax,
    /// `fs.file-nr`
    FileNr,
    /// `net.netfilter.nf_conntrack_max`
    ConntrackMax,
    /// `net.netfilter.nf_conntrack_buckets`
    ConntrackBuckets,
    /// `net.netfilter.nf_conntrack_count`
    ConntrackCount,
    /// `net.ipv4.tcp_mem`
    TcpMem,
    /// `net.ipv4.tcp_rmem`
    TcpRmem,
    /// `net.ipv4.tcp_wmem`
    TcpWmem,
    /// `net.core.somaxconn`
    Somaxconn,
    /// `net.ipv4.tcp_max_syn_backlog`
    TcpMaxSynBacklog,
    /// `net.ipv4.tcp_syncookies`
    TcpSyncookies,
    /// `net.core.netdev_max_backlog`
    NetdevMaxBacklog,
    /// `net.ipv4.ip_local_port_range`
    IpLocalPortRange,
    /// `net.ipv4.tcp_tw_reuse`
    TcpTwReuse,
    /// `net.ipv4.tcp_fin_timeout`
    TcpFinTimeout,
    /// `net.ipv4.tcp_max_tw_buckets`
    TcpMaxTwBuckets,
    /// `net.ipv4.tcp_max_orphans`
    TcpMaxOrphans,
    /// `memory.total`
    MemoryTotal,
    /// `memory.free`
    MemoryFree,
    /// `memory.per-socket`
    MemoryPerSocket,
}

impl KnobId {
    /// How many knobs there are: the length of the registry.
    pub const COUNT: usize = KnobId::MemoryPerSocket as usize + 1;

    /// The registry entry.
    pub fn knob(self) -> &'static Knob {
        &REGISTRY[self as usize]
    }

    /// The name users type (`net.core.somaxconn`, `rlimit.nofile.soft`).
    pub fn name(self) -> &'static str {
        self.knob().name
    }

    /// The id of a registry name, exactly as spelt.
    pub fn from_name(name: &str) -> Option<KnobId> {
        super::find(name).map(|k| k.id)
    }

    /// Every id, in registry order.
    pub fn all() -> impl Iterator<Item = KnobId> {
        REGISTRY.iter().map(|k| k.id)
    }
}

impl fmt::Display for KnobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A knob id serializes as its registry name, as JSON reports always named knobs.
impl serde::Serialize for KnobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What [`Observation::get`](super::Observation::get) accepts: a [`KnobId`], or (while code outside
/// the registry moves over to ids) a registry name.
pub trait KnobKey {
    /// The registry name this key stands for.
    fn knob_name(&self) -> &str;
}

impl KnobKey for KnobId {
    fn knob_name(&self) -> &str {
        self.name()
    }
}

impl<T: AsRef<str> + ?Sized> KnobKey for &T {
    fn knob_name(&self) -> &str {
        (*self).as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_its_own_entry() {
        assert_eq!(REGISTRY.len(), KnobId::COUNT);
        for (i, k) in REGISTRY.iter().enumerate() {
            assert_eq!(k.id as usize, i, "{}", k.name);
            assert_eq!(KnobId::from_name(k.name), Some(k.id));
            assert_eq!(k.id.knob().name, k.name);
        }
        assert_eq!(KnobId::Somaxconn.name(), "net.core.somaxconn");
        assert_eq!(
            serde_json::to_string(&KnobId::NofileSoft).unwrap(),
            "\"rlimit.nofile.soft\""
        );
    }
}
