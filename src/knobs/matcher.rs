//! Knob names as people type them: the one matcher behind `tune explain`, `check --ignore`, profiles' "did you mean" and every unknown-knob error.
//!
//! A typed name matches a knob by, in order: its full name (`net.core.somaxconn`); a unique
//! end at a dot (`somaxconn`, `nofile.soft`); a unique start of the name or of an end at a dot
//! (`net.core.soma`, `soma`). Several knobs matching at the same rank is an error naming them
//! (`nofile` names both `rlimit.nofile.*` knobs); no match suggests near names (Jaro-Winkler)
//! and points at `tune explain all` instead of listing every knob on one line.

use super::Knob;

/// How close a typed name must come to a knob (Jaro-Winkler similarity, 0 to 1) to be suggested:
/// 0.8 catches a dropped or swapped letter (`somaxcon`, `tcp_mme`) without suggesting unrelated knobs.
const SUGGEST_SIMILARITY: f64 = 0.8;
/// Most near names an error suggests.
const MAX_SUGGESTIONS: usize = 3;

/// Why a typed name names no single knob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// Nothing matches; near names, nearest first (possibly none).
    Unknown {
        typed: String,
        near: Vec<&'static str>,
    },
    /// Several knobs match at the best rank.
    Ambiguous {
        typed: String,
        matches: Vec<&'static str>,
    },
}

impl std::fmt::Display for NoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoMatch::Unknown { typed, near } if near.is_empty() => write!(
                f,
                "unknown knob {typed:?}; `tune explain all` describes every knob"
            ),
            NoMatch::Unknown { typed, near } => write!(
                f,
                "unknown knob {typed:?}; did you mean {}?",
                near.join(" or ")
            ),
            NoMatch::Ambiguous { typed, matches } => write!(
                f,
                "knob {typed:?} matches {} knobs: {}; type more of the name",
                matches.len(),
                matches.join(", ")
            ),
        }
    }
}

impl std::error::Error for NoMatch {}

/// The knob of `registry` that `typed` names (see the module comment for the ranks).
pub fn match_in(registry: &'static [Knob], typed: &str) -> Result<&'static Knob, NoMatch> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Err(NoMatch::Unknown {
            typed: typed.to_string(),
            near: Vec::new(),
        });
    }
    if let Some(k) = registry.iter().find(|k| k.name == typed) {
        return Ok(k);
    }
    let ranks: [&dyn Fn(&str) -> bool; 2] = [&|tail: &str| tail == typed, &|tail: &str| {
        tail.starts_with(typed)
    }];
    for rank in ranks {
        let matches: Vec<&'static Knob> = registry
            .iter()
            .filter(|k| tails(k.name).any(rank))
            .collect();
        match matches.as_slice() {
            [] => continue,
            [one] => return Ok(one),
            many => {
                return Err(NoMatch::Ambiguous {
                    typed: typed.to_string(),
                    matches: many.iter().map(|k| k.name).collect(),
                })
            }
        }
    }
    Err(NoMatch::Unknown {
        typed: typed.to_string(),
        near: suggestions_in(registry, typed),
    })
}

/// A name and each of its ends after a dot: `net.core.somaxconn`, `core.somaxconn`, `somaxconn`.
fn tails(name: &'static str) -> impl Iterator<Item = &'static str> {
    std::iter::once(name).chain(name.match_indices('.').map(move |(i, _)| &name[i + 1..]))
}

/// Knob names of `registry` near `typed`, nearest first. Only the last dotted parts are
/// compared: the shared `net.core.` or `net.ipv4.` prefixes would make every knob of a group
/// look alike.
pub fn suggestions_in(registry: &'static [Knob], typed: &str) -> Vec<&'static str> {
    let last = |n: &str| n.rsplit('.').next().unwrap_or(n).to_string();
    let typed = last(typed);
    let mut scored: Vec<(f64, &'static str)> = registry
        .iter()
        .map(|k| (strsim::jaro_winkler(&typed, &last(k.name)), k.name))
        .filter(|(score, _)| *score >= SUGGEST_SIMILARITY)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, n)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::REGISTRY;
    use super::*;

    fn name(typed: &str) -> Result<&'static str, String> {
        match_in(REGISTRY, typed)
            .map(|k| k.name)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn full_names_unique_ends_and_unique_starts() {
        assert_eq!(name("net.core.somaxconn"), Ok("net.core.somaxconn"));
        assert_eq!(name("somaxconn"), Ok("net.core.somaxconn"));
        assert_eq!(name("core.somaxconn"), Ok("net.core.somaxconn"));
        assert_eq!(name("nofile.soft"), Ok("rlimit.nofile.soft"));
        assert_eq!(name("soma"), Ok("net.core.somaxconn"));
        assert_eq!(name("net.core.soma"), Ok("net.core.somaxconn"));
        assert_eq!(name("nr_open"), Ok("fs.nr_open"));
        assert_eq!(name(" tcp_mem "), Ok("net.ipv4.tcp_mem"));
    }

    #[test]
    fn several_matches_are_named_not_guessed() {
        let e = name("nofile").unwrap_err();
        assert!(
            e.contains("matches 2 knobs: rlimit.nofile.soft, rlimit.nofile.hard"),
            "{e}"
        );
        let e = name("nf_conntrack").unwrap_err();
        assert!(e.contains("matches 3 knobs"), "{e}");
    }

    #[test]
    fn unknown_names_suggest_near_ones_without_listing_them_all() {
        let e = name("somaxconm").unwrap_err();
        assert!(e.contains("did you mean net.core.somaxconn?"), "{e}");
        assert!(!e.contains("fs.file-max"), "{e}");
        let e = name("xyzzy").unwrap_err();
        assert_eq!(
            e,
            "unknown knob \"xyzzy\"; `tune explain all` describes every knob"
        );
        assert!(name("").is_err());
    }
}
