//! `/proc/meminfo`: the memory figures tune plans with, in bytes (parsed by `procfs`).

use procfs::FromRead;

use super::ParseError;

/// The /proc/meminfo fields tune uses, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Meminfo {
    /// MemTotal.
    pub total: u64,
    /// MemFree.
    pub free: u64,
    /// MemAvailable (MemFree on kernels before 3.14, which lack it).
    pub available: u64,
    /// Slab.
    pub slab: u64,
    /// SReclaimable (0 when absent).
    pub slab_reclaimable: u64,
}

/// The one definition of usable memory: MemAvailable less the reclaimable slab grown from
/// `reclaimable_base` to `reclaimable_now` (see [`Meminfo::usable_since`]).
pub fn usable(available: u64, reclaimable_now: u64, reclaimable_base: u64) -> u64 {
    available.saturating_sub(reclaimable_now.saturating_sub(reclaimable_base))
}

impl Meminfo {
    /// Memory connections may still take, the one definition `tune check`'s capacity, the verify
    /// run and its memory watchdog share: MemAvailable, less the reclaimable slab that appeared
    /// since `base` (an open socket's inode and dentry count as reclaimable in MemAvailable, but
    /// the socket holds them: host facts). Before any socket is opened (`base` is `self`) it is
    /// MemAvailable, which, unlike MemFree, counts the page cache the kernel gives back under
    /// pressure.
    pub fn usable_since(&self, base: &Meminfo) -> u64 {
        usable(self.available, self.slab_reclaimable, base.slab_reclaimable)
    }

    /// [`Meminfo::usable_since`] now, before connections are opened: MemAvailable.
    pub fn usable(&self) -> u64 {
        self.usable_since(self)
    }
}

pub fn parse(text: &str) -> Result<Meminfo, ParseError> {
    // The kernel writes meminfo in ASCII; procfs-core 0.17 slices lines by byte offsets and
    // panics inside a multi-byte character (a fuzz find on a tampered --root tree).
    super::ascii_only(text)?;
    let m = procfs::Meminfo::from_read(text.as_bytes())
        .map_err(|e| ParseError::new(1, super::procfs_problem(&e)))?;
    Ok(Meminfo {
        total: m.mem_total,
        free: m.mem_free,
        available: m.mem_available.unwrap_or(m.mem_free),
        slab: m.slab,
        slab_reclaimable: m.s_reclaimable.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz find (fuzz/regressions/proc/procfs-meminfo-char-boundary-panic): procfs-core 0.17
    /// panicked slicing inside a multi-byte character.
    #[test]
    fn text_that_is_not_ascii_is_refused_not_a_panic() {
        let e = parse("+\u{345} 0").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.problem.contains("not ASCII"), "{}", e.problem);
    }

    /// Linux 6.18.44: /proc/meminfo of the development machine.
    const LINUX_6_18: &str = "MemTotal:       24684092 kB
MemFree:         2086236 kB
MemAvailable:   20490032 kB
Buffers:           93128 kB
Cached:         17754164 kB
SwapCached:            0 kB
Active:          7396100 kB
Inactive:       11836580 kB
Active(anon):       1928 kB
Inactive(anon):  1392456 kB
Active(file):    7394172 kB
Inactive(file): 10444124 kB
Unevictable:       21444 kB
Mlocked:           20532 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Zswap:                 0 kB
Zswapped:              0 kB
Dirty:            942428 kB
Writeback:             0 kB
AnonPages:       1407016 kB
Mapped:           408104 kB
Shmem:              8900 kB
KReclaimable:     966780 kB
Slab:            1515888 kB
SReclaimable:     966780 kB
SUnreclaim:       549108 kB
KernelStack:        4288 kB
PageTables:        16520 kB
SecPageTables:         0 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:    12342044 kB
Committed_AS:     811144 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       17084 kB
VmallocChunk:          0 kB
Percpu:              688 kB
AnonHugePages:         0 kB
ShmemHugePages:        0 kB
ShmemPmdMapped:        0 kB
FileHugePages:    176128 kB
FilePmdMapped:         0 kB
Balloon:               0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
DirectMap4k:       28672 kB
DirectMap2M:     2068480 kB
DirectMap1G:    25165824 kB
";

    #[test]
    fn parses_linux_6_18_in_bytes() {
        let m = parse(LINUX_6_18).unwrap();
        assert_eq!(m.total, 24684092 * 1024);
        assert_eq!(m.free, 2086236 * 1024);
        assert_eq!(m.available, 20490032 * 1024);
        assert_eq!(m.slab, 1515888 * 1024);
        assert_eq!(m.slab_reclaimable, 966780 * 1024);
    }

    #[test]
    fn garbage_is_an_error_not_zero() {
        assert!(parse("MemTotal: lots\n").is_err());
    }
}
