//! The kernel's files: a parser per file (text in, typed values out) and [`Host`], the one reader that feeds them.
//!
//! Every parser takes the file's text and returns plain values; reading the
//! file is [`host::Host`]'s business (through [`crate::root::Root`]). Tests use
//! output pasted from a real kernel, labelled with its version. Where `procfs`
//! parses a file (a process's status) the parser here
//! wraps it into the few typed fields tune uses.

pub mod cgroup;
pub mod conntrack_stat;
pub mod fds;
pub mod file_nr;
pub mod host;
pub mod ktls;
pub mod meminfo;
pub mod netstat;
pub mod nf_conntrack;
pub mod pressure;
pub mod process;
pub mod slabinfo;
pub mod sockstat;
pub mod tcp_table;
pub mod userns;
pub mod vmstat;

pub use host::{Host, HostError, Ktls};

/// A parser's complaint: which line of the text and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number in the parsed text.
    pub line: usize,
    pub problem: String,
}

/// Refuses text that is not ASCII, naming the first line that is not: what the kernel writes in
/// these files is ASCII, and the procfs-core parsers slice by byte offsets.
pub(crate) fn ascii_only(text: &str) -> Result<(), ParseError> {
    match text.lines().position(|l| !l.is_ascii()) {
        None => Ok(()),
        Some(i) => Err(ParseError::new(
            i + 1,
            "not ASCII: the kernel writes this file in ASCII (a damaged or edited copy?)",
        )),
    }
}

impl ParseError {
    pub(crate) fn new(line: usize, problem: impl Into<String>) -> Self {
        ParseError {
            line,
            problem: problem.into(),
        }
    }
}

/// Parses a decimal counter, naming the word when it is not one.
pub(crate) fn number(line: usize, word: &str) -> Result<u64, ParseError> {
    word.parse::<u64>()
        .map_err(|_| ParseError::new(line, format!("expected a number, found {word:?}")))
}

/// procfs's error text without its "Internal error: bug at ... please report" wording, which
/// blames procfs for what is a malformed file in the tree tune was pointed at.
pub(crate) fn procfs_problem(e: &procfs::ProcError) -> String {
    match e {
        procfs::ProcError::InternalError(_) => "a line could not be parsed".into(),
        other => other.to_string(),
    }
}

/// A fuzz input of the parser dispatchers below: its first byte (which parser) and the rest as
/// text; `None` when it is empty or the rest is not UTF-8.
fn fuzz_input(data: &[u8]) -> Option<(u8, &str)> {
    let (&which, rest) = data.split_first()?;
    Some((which, std::str::from_utf8(rest).ok()?))
}

/// Runs the memory-pressure parsers on arbitrary bytes, the first byte picking which: PSI
/// (`/proc/pressure/memory`) or the reclaim counters of `/proc/vmstat`, with the arithmetic the
/// reclaim watch does on them (growth between two samples, sums). The cargo-fuzz `pressure` target and its corpus replay under `cargo test` share
/// it. A target of its own: adding these to [`parse_any`]'s first-byte choice would remap the
/// `proc` corpus and regressions. Oracle: it returns (no panic, no overflow).
#[doc(hidden)]
pub fn parse_pressure_any(data: &[u8]) {
    let Some((which, text)) = fuzz_input(data) else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(p) = pressure::parse(text) {
            let _ = (p.some.avg10 + p.full.avg300, p.full.total_us);
        }
    } else if let Ok(r) = vmstat::parse(text) {
        // Growth both ways (a counter that went back counts 0) and the sums of both counters.
        let zero = vmstat::Reclaim::default();
        let (grown, back) = (r.since(&zero), zero.since(&r));
        let _ = (
            grown.scanned(),
            grown.stolen(),
            back.scanned(),
            r.scanned(),
            r.stolen(),
        );
    }
}

/// Runs one /proc parser on arbitrary bytes, the first byte picking which (slabinfo with its
/// cost arithmetic, netstat, file-nr, sockstat, meminfo, nf_conntrack stat, process status,
/// limits, stat). The cargo-fuzz `proc` target and its corpus replay under `cargo test` share it,
/// so both always drive the same parsers. Oracle: it returns (no panic, no overflow).
#[doc(hidden)]
pub fn parse_any(data: &[u8]) {
    let Some((which, text)) = fuzz_input(data) else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(caches) = slabinfo::parse(text) {
                for c in &caches {
                    let _ = (c.bytes_per_object(), c.bytes_total());
                }
                let _ = slabinfo::socket_cost(&caches);
            }
        }
        1 => drop(netstat::parse(text)),
        2 => drop(file_nr::parse(text)),
        3 => drop(sockstat::parse(text)),
        4 => drop(meminfo::parse(text)),
        5 => drop(conntrack_stat::parse_stat(text)),
        6 => drop(process::parse_status(text)),
        7 => drop(process::parse_nofile(text)),
        _ => drop(process::parse_start_time(text)),
    }
}
