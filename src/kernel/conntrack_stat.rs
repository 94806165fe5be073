//! `/proc/net/stat/nf_conntrack`: conntrack's statistics, a header of names and one row of hex numbers per CPU.

use std::collections::BTreeMap;

use super::ParseError;

/// Conntrack state of the namespace tune runs in: entries and the failure counters summed over
/// CPUs. /proc/sys/net and /proc/net follow the reader's namespace, except `max`: one host-wide
/// value the kernel holds every namespace's own count to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Conntrack {
    /// nf_conntrack is loaded (its sysctls exist).
    pub loaded: bool,
    pub count: Option<u64>,
    pub max: Option<u64>,
    pub drop: u64,
    pub insert_failed: u64,
    pub early_drop: u64,
}

impl Conntrack {
    /// Fills the failure counters from parsed statistics.
    pub fn with_stat(mut self, stat: &BTreeMap<String, u64>) -> Conntrack {
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        self.drop = get("drop");
        self.insert_failed = get("insert_failed");
        self.early_drop = get("early_drop");
        self
    }
}

/// Sums each column over the CPUs, except `entries`: the namespace's entry count, printed alike
/// on every CPU's row, so it is taken once.
pub fn parse_stat(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let names: Vec<&str> = lines
        .next()
        .ok_or_else(|| ParseError::new(1, "empty nf_conntrack statistics"))?
        .split_whitespace()
        .collect();
    let mut sums: BTreeMap<String, u64> = names.iter().map(|n| (n.to_string(), 0)).collect();
    for (i, line) in lines.enumerate() {
        let vals: Vec<&str> = line.split_whitespace().collect();
        if vals.len() != names.len() {
            return Err(ParseError::new(
                i + 2,
                format!("{} names but {} values", names.len(), vals.len()),
            ));
        }
        for (n, v) in names.iter().zip(vals) {
            let v = u64::from_str_radix(v, 16).map_err(|_| {
                ParseError::new(i + 2, format!("expected a hex number, found {v:?}"))
            })?;
            let sum = sums.get_mut(*n).expect("name inserted");
            *sum = if *n == "entries" {
                (*sum).max(v)
            } else {
                sum.saturating_add(v)
            };
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/net/stat/nf_conntrack on Linux 6.18.44 (two CPUs), read inside the network
    /// namespace of tests/verify_conntrack.rs after its run filled the table (262,144 entries,
    /// nf_conntrack_max 262,144): the SYNs that found no free entry counted under `drop`.
    const FULL_6_18_44: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00040000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000594 00000000 00000000  00000000 00000000 00000000 00000000
00040000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000b28 00000000 00000000  00000000 00000000 00000000 00000000
";

    #[test]
    fn sums_cpus_but_counts_entries_once() {
        let s = parse_stat(FULL_6_18_44).unwrap();
        assert_eq!(s["entries"], 262_144);
        assert_eq!(s["drop"], 0x594 + 0xb28);
        assert_eq!(s["insert_failed"], 0);
        let c = Conntrack::default().with_stat(&s);
        assert_eq!(
            (c.drop, c.insert_failed, c.early_drop),
            (0x594 + 0xb28, 0, 0)
        );
    }

    #[test]
    fn malformed_rows_name_their_line() {
        assert_eq!(parse_stat("a b\n1\n").unwrap_err().line, 2);
        assert!(parse_stat("a\nzz\n").unwrap_err().problem.contains("hex"));
        assert!(parse_stat("").is_err());
    }
}
