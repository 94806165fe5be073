//! `/proc/meminfo`: the memory figures tune plans with, in bytes, every scaling checked.

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
    /// The page cache: Cached + Buffers less Shmem (which cannot be dropped, only swapped).
    /// Part of MemAvailable, but the kernel must reclaim it before a socket can use it.
    pub page_cache: u64,
    /// Inactive(file): the page cache kswapd reclaims first and cheaply (0 when absent).
    pub inactive_file: u64,
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

    /// What the kernel gives without a reclaim storm: MemFree and the inactive page cache
    /// (reclaiming the active page cache, the working set of running programs, is what turned
    /// into a storm past ~2.2M pairs in issue 26). At most [`Meminfo::usable`].
    pub fn quick(&self) -> u64 {
        self.free
            .saturating_add(self.inactive_file)
            .min(self.usable())
    }

    /// [`Meminfo::usable_since`] now, before connections are opened: MemAvailable.
    pub fn usable(&self) -> u64 {
        self.usable_since(self)
    }
}

/// Bytes per unit of a meminfo value. The kernel writes `kB` (meaning KiB) and no unit for
/// counts; the other spellings are those procfs-core accepts, kept so no tree that parsed
/// before is refused now.
fn unit_bytes(unit: &str) -> Option<u64> {
    match unit {
        "B" => Some(1),
        "KiB" | "kiB" | "kB" | "KB" => Some(1 << 10),
        "MiB" | "miB" | "MB" | "mB" => Some(1 << 20),
        "GiB" | "giB" | "GB" | "gB" => Some(1 << 30),
        _ => None,
    }
}

/// One `Name: value [unit]` line as a name and a value in bytes (a count when there is no unit).
/// The scaling is checked: a value past u64 bytes is an error naming the line, never a wrapped
/// figure (procfs-core 0.17 multiplied unchecked: issue 24's `MemTotal: 99999999999 gB` planned
/// with 0 bytes).
fn line(n: usize, text: &str) -> Result<(&str, u64), ParseError> {
    let shape = || {
        ParseError::new(
            n,
            format!("expected \"Name: value kB\", as the kernel writes, found {text:?}"),
        )
    };
    let mut words = text.split_ascii_whitespace();
    let (Some(name), Some(value)) = (words.next(), words.next()) else {
        return Err(shape());
    };
    let name = name.strip_suffix(':').ok_or_else(shape)?;
    let unit = words.next();
    if words.next().is_some() {
        return Err(shape());
    }
    let value = super::number(n, value)?;
    let Some(unit) = unit else {
        return Ok((name, value));
    };
    let scale = unit_bytes(unit).ok_or_else(|| {
        ParseError::new(
            n,
            format!("{name}: unknown unit {unit:?} (the kernel writes kB)"),
        )
    })?;
    let bytes = value.checked_mul(scale).ok_or_else(|| {
        ParseError::new(
            n,
            format!(
                "{name}: {value} {unit} is more than {} bytes, more memory than a 64-bit kernel can count (a damaged or edited copy?)",
                u64::MAX
            ),
        )
    })?;
    Ok((name, bytes))
}

/// The fields tune uses, in bytes. Parsed here rather than by procfs-core 0.17, whose unit
/// conversion overflows (a panic in debug builds, a wrapped value in release: a fuzz find) and
/// whose errors name no line. Lines tune does not use are still checked, so a damaged file is
/// refused whole rather than half-read; MemTotal, MemFree and Slab are required, as every
/// kernel since 2.6 writes them.
pub fn parse(text: &str) -> Result<Meminfo, ParseError> {
    super::ascii_only(text)?;
    let [mut total, mut free, mut available, mut slab, mut reclaimable] = [None; 5];
    let [mut cached, mut buffers, mut shmem, mut inactive_file] = [None; 4];
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let (name, bytes) = line(i + 1, l)?;
        let slot = match name {
            "MemTotal" => &mut total,
            "MemFree" => &mut free,
            "MemAvailable" => &mut available,
            "Slab" => &mut slab,
            "SReclaimable" => &mut reclaimable,
            "Cached" => &mut cached,
            "Buffers" => &mut buffers,
            "Shmem" => &mut shmem,
            "Inactive(file)" => &mut inactive_file,
            _ => continue,
        };
        if let Some((first, _)) = slot.replace((i + 1, bytes)) {
            return Err(ParseError::new(
                i + 1,
                format!("{name} again (first on line {first}): the kernel writes it once"),
            ));
        }
    }
    let required = |field: Option<(usize, u64)>, name: &str| {
        field.map(|(_, b)| b).ok_or_else(|| {
            ParseError::new(
                1,
                format!("no {name} line: every kernel's /proc/meminfo has one"),
            )
        })
    };
    let free = required(free, "MemFree")?;
    Ok(Meminfo {
        total: required(total, "MemTotal")?,
        free,
        available: available.map_or(free, |(_, b)| b),
        slab: required(slab, "Slab")?,
        slab_reclaimable: reclaimable.map_or(0, |(_, b)| b),
        page_cache: [cached, buffers]
            .iter()
            .map(|f| f.map_or(0, |(_, b)| b))
            .sum::<u64>()
            .saturating_sub(shmem.map_or(0, |(_, b)| b)),
        inactive_file: inactive_file.map_or(0, |(_, b)| b),
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
        // Cached 17,754,164 + Buffers 93,128 − Shmem 8,900 kB.
        assert_eq!(m.page_cache, (17754164 + 93128 - 8900) * 1024);
        assert_eq!(m.inactive_file, 10444124 * 1024);
        assert_eq!(m.quick(), (2086236 + 10444124) * 1024);
    }

    #[test]
    fn garbage_is_an_error_not_zero() {
        assert!(parse("MemTotal: lots\n").is_err());
    }

    /// Issue 24 (a fuzz find, fuzz/regressions/proc/procfs-meminfo-unit-overflow): procfs-core
    /// 0.17 multiplied the value by its unit unchecked, so this planned with 0 bytes of memory.
    #[test]
    fn a_value_past_u64_bytes_is_an_error_naming_its_line() {
        let text =
            LINUX_6_18.replacen("MemTotal:       24684092 kB", "MemTotal: 99999999999 gB", 1);
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.problem
                .contains("MemTotal: 99999999999 gB is more than 18446744073709551615 bytes"),
            "{}",
            e.problem
        );
        // A line tune does not use is checked too: the file is refused whole.
        let text = LINUX_6_18.replacen(
            "Bounce:                0 kB",
            "Bounce: 18014398509481984 kB",
            1,
        );
        assert_eq!(parse(&text).unwrap_err().line, 32);
    }

    /// Every unit at the edge: the largest value that fits is taken exactly, one more is refused.
    #[test]
    fn each_unit_scales_up_to_the_last_value_that_fits() {
        for (unit, scale) in [
            ("B", 1u64),
            ("kB", 1 << 10),
            ("MB", 1 << 20),
            ("GB", 1 << 30),
        ] {
            let max = u64::MAX / scale;
            let text = |v: u64| format!("MemTotal: {v} {unit}\nMemFree: 0 kB\nSlab: 0 kB\n");
            assert_eq!(parse(&text(max)).unwrap().total, max * scale, "{unit}");
            if scale > 1 {
                assert_eq!(parse(&text(max + 1)).unwrap_err().line, 1, "{unit}");
            }
        }
        let e = parse("MemTotal: 18446744073709551616 kB\n").unwrap_err();
        assert!(e.problem.contains("expected a number"), "{}", e.problem);
    }

    #[test]
    fn missing_repeated_and_misshapen_lines_are_named() {
        let e = parse("MemFree: 1 kB\nSlab: 1 kB\n").unwrap_err();
        assert!(e.problem.contains("no MemTotal line"), "{}", e.problem);
        let e = parse("MemTotal: 1 kB\nMemFree: 1 kB\nMemTotal: 2 kB\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.problem.contains("first on line 1"), "{}", e.problem);
        assert_eq!(parse("MemTotal: 1 kB\nMemFree 1 kB\n").unwrap_err().line, 2);
        assert_eq!(
            parse("MemTotal: 1 kB\nMemFree: 1 kB extra\n")
                .unwrap_err()
                .line,
            2
        );
        let e = parse("MemTotal: 1 pages\n").unwrap_err();
        assert!(
            e.problem.contains("unknown unit \"pages\""),
            "{}",
            e.problem
        );
    }

    /// Kernels before 3.14 write no MemAvailable line: MemFree stands in; SReclaimable is optional.
    #[test]
    fn available_falls_back_to_free() {
        let m = parse("MemTotal: 4 kB\nMemFree: 2 kB\nSlab: 1 kB\nHugePages_Total: 0\n").unwrap();
        assert_eq!((m.available, m.slab_reclaimable), (2048, 0));
    }
}
