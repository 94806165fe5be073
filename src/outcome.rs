//! How a command ended when it did not fail outright, and the exit code it maps to: the
//! contract `main`, the reports (their `exit_code` field) and the man pages share.

/// How a command ended when it did not fail outright; errors are `Err` and exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: everything required holds (warnings allowed).
    Pass,
    /// Exit 1: a requirement falls short, a plan is incomplete, a verify run fell short.
    ShortFall,
}

impl Outcome {
    /// `Pass` when `ok`, else `ShortFall`.
    pub fn of(ok: bool) -> Outcome {
        if ok {
            Outcome::Pass
        } else {
            Outcome::ShortFall
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::ShortFall => 1,
        }
    }
}
