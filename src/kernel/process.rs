//! `/proc/PID/status`, `/proc/PID/limits` and `/proc/PID/stat`: the few facts about a process tune needs (parsed by `procfs`).

use procfs::process::Status;
use procfs::FromRead;

use super::ParseError;

/// `u64::MAX` stands for "unlimited" (RLIMIT_INFINITY), as in the knob values.
pub const UNLIMITED: u64 = u64::MAX;

/// From /proc/PID/status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcStatus {
    /// CapEff: the effective capability set.
    pub cap_eff: u64,
    /// VmRSS in bytes: everything resident, shared file pages counted in every process.
    pub rss: u64,
    /// RssAnon in bytes: private heap and stacks.
    pub rss_anon: u64,
}

pub fn parse_status(text: &str) -> Result<ProcStatus, ParseError> {
    let s = Status::from_read(text.as_bytes())
        .map_err(|e| ParseError::new(1, super::procfs_problem(&e)))?;
    Ok(ProcStatus {
        cap_eff: s.capeff,
        rss: kib_to_bytes(text, "VmRSS", s.vmrss)?,
        rss_anon: kib_to_bytes(text, "RssAnon", s.rssanon)?,
    })
}

/// A status field procfs read in KiB, in bytes (0 when absent: kernel threads have none). The
/// scaling is checked: a value past u64 bytes is an error naming its line, not a saturated or
/// wrapped figure.
fn kib_to_bytes(text: &str, field: &str, kib: Option<u64>) -> Result<u64, ParseError> {
    let Some(kib) = kib else { return Ok(0) };
    kib.checked_mul(1024).ok_or_else(|| {
        let prefix = format!("{field}:");
        let line = text
            .lines()
            .position(|l| l.starts_with(&prefix))
            .map_or(1, |i| i + 1);
        ParseError::new(
            line,
            format!(
                "{field}: {kib} kB is more than {} bytes (a damaged or edited copy?)",
                u64::MAX
            ),
        )
    })
}

/// RLIMIT_NOFILE from /proc/PID/limits ("Max open files"), [`UNLIMITED`] for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Nofile {
    pub soft: u64,
    pub hard: u64,
}

/// Reads the "Max open files" line itself: procfs's `Limits` needs every line of the file and
/// panics (a subtraction overflow) on a line of fewer than three words, which a `--root` tree
/// may hold.
pub fn parse_nofile(text: &str) -> Result<Nofile, ParseError> {
    const LINE: &str = "Max open files";
    let (n, rest) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.strip_prefix(LINE).map(|rest| (i + 1, rest)))
        .ok_or_else(|| {
            ParseError::new(1, format!("not in the kernel's format: no \"{LINE}\" line"))
        })?;
    let value = |w: &str| match w {
        "unlimited" => Ok(UNLIMITED),
        w => super::number(n, w),
    };
    match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [soft, hard, ..] => Ok(Nofile {
            soft: value(soft)?,
            hard: value(hard)?,
        }),
        _ => Err(ParseError::new(
            n,
            format!(
                "expected \"{LINE} SOFT HARD files\", found {:?}",
                format!("{LINE}{rest}")
            ),
        )),
    }
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot; with the
/// pid it recognises a process later (a reused pid has another start time).
///
/// Parsed here rather than by procfs-core 0.17, whose `Stat` parser indexes around the command
/// name's parentheses and panics on lines the kernel never writes (fuzz finds: `)(`, a `(` in
/// the first column, nothing after the `)`); on a tampered `--root` tree that must be an error.
pub fn parse_start_time(text: &str) -> Result<u64, ParseError> {
    parse_stat(text).map(|(_, start)| start)
}

/// Field 3 (state: `R`, `S`, `Z` for a zombie ...) and field 22 (start time) of /proc/PID/stat.
pub fn parse_stat(text: &str) -> Result<(char, u64), ParseError> {
    const SHAPE: &str = "expected `PID (COMM) STATE ...` with 52 fields, as /proc/PID/stat gives";
    let line = text.lines().next().unwrap_or("");
    let (Some(open), Some(close)) = (line.find('('), line.rfind(')')) else {
        return Err(ParseError::new(1, SHAPE));
    };
    let pid_ok = open > 0 && line[..open].trim().parse::<u32>().is_ok();
    if !pid_ok || open > close {
        return Err(ParseError::new(1, SHAPE));
    }
    // After the command name: field 3 (state) is the first, so field 22 is the 20th.
    let mut fields = line[close + 1..].split_ascii_whitespace();
    let state = fields
        .next()
        .and_then(|f| f.chars().next())
        .ok_or_else(|| ParseError::new(1, SHAPE))?;
    let field = fields
        .nth(22 - 4)
        .ok_or_else(|| ParseError::new(1, SHAPE))?;
    let start = field.parse().map_err(|_| {
        ParseError::new(
            1,
            format!("field 22 (starttime) {field:?} is not a number of clock ticks"),
        )
    })?;
    Ok((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz find (fuzz/regressions/proc/procfs-stat-slice-panic): procfs-core 0.17 panicked on
    /// a `)` before the `(`.
    #[test]
    fn a_stat_line_with_its_parentheses_reversed_is_refused_not_a_panic() {
        let e = parse_start_time("\0\0\0)( ").unwrap_err();
        assert!(e.problem.contains("PID (COMM)"), "{}", e.problem);
    }

    /// Linux 6.18.44: /proc/self/limits of `cat` on the development machine.
    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
";

    /// Linux 6.18.44: /proc/self/stat of `cat` on the development machine.
    const STAT: &str = "3619 (cat) R 3500 3497 12554 0 -1 4194304 76 0 0 0 0 0 0 0 20 0 1 0 96736 3133440 380 18446744073709551615 94581864079360 94581864099241 140734571680544 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94581864115248 94581864116864 94582709956608 140734571686167 140734571686187 140734571686187 140734571687915 0\n";

    #[test]
    fn parses_linux_6_18() {
        assert_eq!(
            parse_nofile(LIMITS).unwrap(),
            Nofile {
                soft: 20000,
                hard: 20000
            }
        );
        assert_eq!(parse_start_time(STAT).unwrap(), 96736);
    }

    #[test]
    fn reads_its_own_status() {
        let s = parse_status(&std::fs::read_to_string("/proc/self/status").unwrap()).unwrap();
        assert!(s.rss > 0 && s.rss_anon > 0 && s.rss_anon <= s.rss);
    }

    /// Issue 24: VmRSS is in KiB; a value whose bytes pass u64 is refused with its line named.
    #[test]
    fn an_rss_past_u64_bytes_is_an_error_naming_its_line() {
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        let at = own.lines().position(|l| l.starts_with("VmRSS:")).unwrap();
        let text: String = own
            .lines()
            .enumerate()
            .map(|(i, l)| match i == at {
                true => "VmRSS:\t18014398509481984 kB\n".to_string(),
                false => format!("{l}\n"),
            })
            .collect();
        let e = parse_status(&text).unwrap_err();
        assert_eq!(e.line, at + 1);
        assert!(
            e.problem
                .contains("VmRSS: 18014398509481984 kB is more than"),
            "{}",
            e.problem
        );
        let fits = text.replace("18014398509481984 kB", "18014398509481983 kB");
        assert_eq!(parse_status(&fits).unwrap().rss, 18014398509481983 * 1024);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_nofile("nothing here\n").is_err());
        assert!(parse_nofile("x\nMax open files 12\n").unwrap_err().line == 2);
        assert!(parse_nofile("Max open files many 12 files\n").is_err());
        assert_eq!(
            parse_nofile("Max open files unlimited unlimited files\n").unwrap(),
            Nofile {
                soft: UNLIMITED,
                hard: UNLIMITED
            }
        );
        assert!(parse_start_time("12 (x\n").is_err());
    }
}
