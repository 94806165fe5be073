//! Values as the command line gives them and the domain takes them, parsed from text (no I/O):
//! a count or `auto` ([`Processes`]), byte sizes ([`ByteSize`]), seconds ([`Secs`]) and source
//! address lists ([`Sources`]). `cli/` declares the flags with them; `verify` and `cmd/` use
//! the values.

use std::time::Duration;

use embedded_server::loadgen::sources;

/// A count given as a number or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    /// Enough that each process stays under its fd cap, at least one per core.
    Auto,
    Fixed(usize),
}

impl std::str::FromStr for Processes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Processes::Auto),
            p => match crate::quantity::parse_count_usize(p) {
                Ok(n) if n >= 1 => Ok(Processes::Fixed(n)),
                _ => Err(format!(
                    "expected a number of processes (1 or more, such as 4 or 1k) or `auto`, found {p:?}"
                )),
            },
        }
    }
}

/// A size in bytes as the command line gives it: `512M`, `2G`, `1.5k`, `1048576` (binary
/// units K, M, G, T).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::quantity::parse_size(s).map(ByteSize)
    }
}

/// A number of seconds as the command line gives it (`5`, `0.5`): finite and not negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl std::str::FromStr for Secs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Secs(Duration::from_secs_f64(v))),
            _ => Err("expected a non-negative number of seconds, like 5 or 0.5".into()),
        }
    }
}

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

/// Source addresses as the command line gives them: `127.0.0.2-127.0.0.254`,
/// `2001:db8:100::/64:1000`, `2001:db8:100::/64` (as many as the run needs) or a
/// comma-separated list (sized and checked for bindability later, against the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(pub sources::Spec);

impl std::str::FromStr for Sources {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        sources::parse_spec(s).map(Sources)
    }
}

/// Declares [`Input`] and `Input::ALL` from one list, so the list of every input cannot miss one.
macro_rules! inputs {
    ($(#[$outer:meta])* { $($(#[$doc:meta])* $v:ident,)* }) => {
        $(#[$outer])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Input {
            $($(#[$doc])* $v,)*
        }

        impl Input {
            /// Every input (the test that holds `cli::flags` to clap's flags walks it).
            pub const ALL: &[Input] = &[$(Input::$v),*];
        }
    };
}

inputs! {
    /// An input of a command that domain code refuses ([`Refused`]) or suggests ([`Suggest`]).
    /// Domain code names the input, never its flag: `cli::flags` spells the flag when the text is
    /// printed, the one place outside the clap definitions that does (as ripgrep adds flag names to
    /// its errors in one place). `tests/integration/architecture.rs` fails on a flag literal below
    /// `cmd/`.
    {
        Target,
        Profile,
        Processes,
        Concurrency,
        Rate,
        CloseRate,
        MessageInterval,
        MemoryFloor,
        Source,
        Ignore,
        Service,
        StateDir,
        Pid,
        Persist,
        AllowLower,
        Verbose,
        Format,
        CostFrom,
        Workers,
        Expect,
        Verify,
        Conns,
        ConnectTimeout,
        ServerPid,
        ServerCgroup,
        Steps,
        Listen,
        /// TLS: whether connections use it, what it costs (given or read from a report), and
        /// the trust of a TLS client.
        Tls,
        TlsCost,
        TlsFrom,
        Ca,
        Insecure,
        /// The reconnect storm to make or size.
        Storm,
        /// The hidden worker subcommands' index (`launch` builds their command lines).
        Index,
    }
}

/// A fix or hint that sets one of tune's own inputs, as domain text suggests it: the input and,
/// when there is one, its value. Domain code writes `Suggest::set(Input::Workers, 25)` (or
/// `Suggest::input(Input::Verbose)` for the flag alone) into its advice, never `--workers 25`:
/// the text shows it as the command line spells it, through the speller `cli::flags::install`
/// puts in place when `tune` starts (one table, `cli::flags::flag`). New advice follows this
/// (docs/ARCHITECTURE.md, "Fix suggestions"); a flag literal below `cmd/` fails the
/// architecture test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggest {
    pub input: Input,
    pub value: Option<String>,
}

/// How the command line spells an input; set once by `cli::flags::install` (domain code cannot
/// import `cli`, so the command line hands its speller down, as `log` hands down a logger).
static SPELLER: std::sync::OnceLock<fn(Input) -> &'static str> = std::sync::OnceLock::new();

/// Puts the command line's speller in place (the first call wins).
pub fn install_speller(speller: fn(Input) -> &'static str) {
    let _ = SPELLER.set(speller);
}

impl Suggest {
    /// The input set to `value`: `--workers 25` on screen.
    pub fn set(input: Input, value: impl std::fmt::Display) -> Suggest {
        Suggest {
            input,
            value: Some(value.to_string()),
        }
    }

    /// The input alone: `--verbose` on screen.
    pub fn input(input: Input) -> Suggest {
        Suggest { input, value: None }
    }

    /// The flag of `input` as the command line spells it; `<Input>` (its name in the domain)
    /// where no speller is installed (the library without `tune`'s `main`, unit tests).
    pub fn flag(input: Input) -> String {
        match SPELLER.get() {
            Some(spell) => spell(input).to_string(),
            None => format!("<{input:?}>"),
        }
    }
}

impl std::fmt::Display for Suggest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flag = Suggest::flag(self.input);
        match &self.value {
            Some(v) => write!(f, "{flag} {v}"),
            None => f.write_str(&flag),
        }
    }
}

/// A value refused by the domain: which input, the value as the message shows it (`None`: the
/// input as a whole), and why. Shown without its flag here (`0: expected 1 or more`); the
/// command line prints it as `--concurrency 0: expected 1 or more`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.shown(None))]
pub struct Refused {
    pub input: Input,
    pub value: Option<String>,
    pub why: String,
}

impl Refused {
    pub fn new(input: Input, value: impl std::fmt::Display, why: impl Into<String>) -> Refused {
        Refused {
            input,
            value: Some(value.to_string()),
            why: why.into(),
        }
    }

    /// The input as a whole is refused (`--ignore: unknown knob`).
    pub fn input(input: Input, why: impl Into<String>) -> Refused {
        Refused {
            input,
            value: None,
            why: why.into(),
        }
    }

    /// `FLAG VALUE: WHY` (`FLAG: WHY` without a value); without a flag, the value leads.
    pub fn shown(&self, flag: Option<&str>) -> String {
        match (flag, &self.value) {
            (Some(f), Some(v)) => format!("{f} {v}: {}", self.why),
            (Some(f), None) => format!("{f}: {}", self.why),
            (None, Some(v)) => format!("{v}: {}", self.why),
            (None, None) => self.why.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        let b = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("512M"), Ok(512 << 20));
        assert_eq!(b("2G"), Ok(2 << 30));
        assert_eq!(b("1.5k"), Ok(1536));
        assert_eq!(b("100"), Ok(100));
        assert!(b("lots").unwrap_err().contains("expected bytes"));
        assert_eq!(b("64MiB"), Ok(64 << 20));
        assert!(b("-1G").is_err());
    }

    #[test]
    fn seconds_are_finite_and_not_negative() {
        assert_eq!("0.5".parse::<Secs>(), Ok(Secs(Duration::from_millis(500))));
        assert_eq!("5".parse::<Secs>().unwrap().to_string(), "5");
        for bad in ["-1", "NaN", "inf", "soon"] {
            assert!(bad.parse::<Secs>().is_err(), "{bad}");
        }
    }

    #[test]
    fn processes_are_auto_or_a_positive_number() {
        assert_eq!("auto".parse::<Processes>(), Ok(Processes::Auto));
        assert_eq!("3".parse::<Processes>(), Ok(Processes::Fixed(3)));
        let e = "0".parse::<Processes>().unwrap_err();
        assert!(e.contains("found \"0\""), "{e}");
        assert_eq!("1k".parse::<Processes>(), Ok(Processes::Fixed(1_000)));
        assert!("lots".parse::<Processes>().is_err());
    }
}
