//! The kernel's files: a parser per file (text in, typed values out) and [`Host`], the one reader that feeds them.
//!
//! Every parser takes the file's text and returns plain values; reading the
//! file is [`host::Host`]'s business (through [`crate::root::Root`]). Tests use
//! output pasted from a real kernel, labelled with its version. Where `procfs`
//! parses a file (meminfo, a process's status, limits and stat) the parser here
//! wraps it into the few typed fields tune uses.

pub mod cgroup;
pub mod conntrack;
pub mod file_nr;
pub mod host;
pub mod meminfo;
pub mod netstat;
pub mod nf_conntrack;
pub mod process;
pub mod slabinfo;
pub mod sockstat;
pub mod userns;

pub use host::{Host, HostError};

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
