//! `/proc/vmstat`: the page reclaim counters (pages scanned and taken back by kswapd and by
//! allocations that had to reclaim themselves, and how often an allocation stalled for it).

use super::ParseError;

/// Reclaim since boot, in pages (allocation stalls in events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reclaim {
    /// Pages kswapd scanned: background reclaim, begun when free memory fell under the low
    /// watermark.
    pub pgscan_kswapd: u64,
    /// Pages allocations scanned themselves (direct reclaim): the allocating task waits.
    pub pgscan_direct: u64,
    pub pgsteal_kswapd: u64,
    pub pgsteal_direct: u64,
    /// Allocations that stalled in direct reclaim, every zone (`allocstall_*`).
    pub allocstall: u64,
}

impl Reclaim {
    /// Pages scanned by both.
    pub fn scanned(&self) -> u64 {
        self.pgscan_kswapd.saturating_add(self.pgscan_direct)
    }

    /// Pages taken back by both.
    pub fn stolen(&self) -> u64 {
        self.pgsteal_kswapd.saturating_add(self.pgsteal_direct)
    }

    /// Growth of every counter since `before` (a counter that went back counts 0).
    pub fn since(&self, before: &Reclaim) -> Reclaim {
        Reclaim {
            pgscan_kswapd: self.pgscan_kswapd.saturating_sub(before.pgscan_kswapd),
            pgscan_direct: self.pgscan_direct.saturating_sub(before.pgscan_direct),
            pgsteal_kswapd: self.pgsteal_kswapd.saturating_sub(before.pgsteal_kswapd),
            pgsteal_direct: self.pgsteal_direct.saturating_sub(before.pgsteal_direct),
            allocstall: self.allocstall.saturating_sub(before.allocstall),
        }
    }
}

/// Parses the `name value` lines; the reclaim counters are required (every kernel since 2.6.x
/// writes pgscan_kswapd and pgscan_direct; allocstall is per zone since 4.x), the other lines
/// are checked for shape and left.
pub fn parse(text: &str) -> Result<Reclaim, ParseError> {
    super::ascii_only(text)?;
    let mut r = Reclaim::default();
    let (mut kswapd, mut direct) = (false, false);
    for (i, l) in text.lines().enumerate() {
        let n = i + 1;
        let mut words = l.split_ascii_whitespace();
        let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else {
            if l.trim().is_empty() {
                continue;
            }
            return Err(ParseError::new(
                n,
                format!("expected \"name value\", as the kernel writes, found {l:?}"),
            ));
        };
        let slot = match name {
            "pgscan_kswapd" => {
                kswapd = true;
                &mut r.pgscan_kswapd
            }
            "pgscan_direct" => {
                direct = true;
                &mut r.pgscan_direct
            }
            "pgsteal_kswapd" => &mut r.pgsteal_kswapd,
            "pgsteal_direct" => &mut r.pgsteal_direct,
            a if a.starts_with("allocstall") => {
                r.allocstall = r.allocstall.saturating_add(super::number(n, value)?);
                continue;
            }
            _ => continue,
        };
        *slot = super::number(n, value)?;
    }
    if !(kswapd && direct) {
        return Err(ParseError::new(
            1,
            "no pgscan_kswapd or pgscan_direct line: every kernel's /proc/vmstat has them",
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44 (fc-v1300): the reclaim part of /proc/vmstat of the development machine
    /// (kswapd had reclaimed page cache; a few allocations had stalled): its reclaim lines and
    /// a few others, in the kernel's order.
    const LINUX_6_18: &str = "nr_free_pages 1404124
nr_inactive_file 1774397
nr_active_file 1370231
workingset_refault_file 21528121
allocstall_dma 0
allocstall_dma32 0
allocstall_normal 0
allocstall_movable 8
allocstall_device 0
pgskip_dma 0
pgsteal_kswapd 320801
pgsteal_direct 2451
pgsteal_khugepaged 0
pgsteal_proactive 0
pgscan_kswapd 321020
pgscan_direct 2451
pgscan_khugepaged 0
pgscan_proactive 0
pgscan_direct_throttle 0
pgscan_anon 0
pgscan_file 67166054
pgsteal_anon 0
pgsteal_file 12464329
";

    #[test]
    fn parses_linux_6_18() {
        let r = parse(LINUX_6_18).unwrap();
        assert_eq!(r.pgscan_kswapd, 321020);
        assert_eq!(r.pgscan_direct, 2451);
        assert_eq!(r.pgsteal_kswapd, 320801);
        assert_eq!(r.pgsteal_direct, 2451);
        assert_eq!(r.allocstall, 8);
        assert_eq!(r.scanned(), 323471);
        let later = Reclaim {
            pgscan_direct: 3000,
            ..r
        };
        assert_eq!(later.since(&r).pgscan_direct, 549);
        assert_eq!(later.since(&r).pgscan_kswapd, 0);
    }

    #[test]
    fn damaged_text_is_an_error_naming_the_line() {
        let e = parse("pgscan_kswapd 1\npgscan_direct many\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("nr_free_pages 1\n").is_err());
        assert!(parse("pgscan_kswapd 1 2\n").is_err());
    }
}
