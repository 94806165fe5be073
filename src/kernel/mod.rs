//! Parsers for kernel text that `procfs` does not cover: sockstat, slabinfo, netstat counters, fs.file-nr.
//!
//! Every parser takes the file's text and returns plain values; reading the
//! file is the caller's business (through [`crate::root::Root`]). Tests use
//! output pasted from a real kernel, labelled with its version.

pub mod cgroup;
pub mod file_nr;
pub mod netstat;
pub mod nf_conntrack;
pub mod slabinfo;
pub mod sockstat;
pub mod userns;

/// A parser's complaint: which line of the text and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number in the parsed text.
    pub line: usize,
    pub problem: String,
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
