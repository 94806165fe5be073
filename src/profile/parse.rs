//! Profile text to a checked [`RawProfile`]: every mistake reported in the user's words, with the line, the key and what to write instead.
//!
//! Pure: text in, values or [`Problem`]s out (the caller adds the file name).
//! TOML's own syntax is left to the `toml` crate; everything after that
//! (which keys exist, their types, the count suffixes, the kernel's bounds for
//! each knob) is checked here so no serde wording ("expected u64", "expected a
//! borrowed string") reaches the user.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use crate::knobs::Role;
use crate::knobs::{self, Compare, Knob, KnobId, Persist, Shape, Value};
use crate::quantity::{parse_count, COUNT_FORMS};

/// One mistake in a profile's text, before the file name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

/// A profile file's own settings, checked but not yet merged with what it extends.
#[derive(Debug, Default)]
pub struct RawProfile {
    pub description: Option<String>,
    /// The profile it extends, with the line of the `extends` key.
    pub extends: Option<(String, usize)>,
    pub target: Option<u64>,
    pub role: Option<Role>,
    pub headroom_percent: Option<u64>,
    pub processes: Option<u64>,
    pub bytes_per_socket: Option<u64>,
    pub bytes_per_connection: Option<u64>,
    pub tls_bytes_per_connection: Option<u64>,
    pub source_addresses: Option<u64>,
    /// `storm = "N/SECS"`: the reconnect storm to survive.
    pub storm: Option<super::storm::Storm>,
    /// Knob requirements in file order, each name resolved to its registry id: (knob, value, line).
    pub knobs: Vec<(KnobId, Value, usize)>,
}

/// The top-level keys a profile may have, for "did you mean" and the list in errors.
pub const TOP_KEYS: &[&str] = &[
    "description",
    "extends",
    "target",
    "role",
    "headroom_percent",
    "processes",
    "bytes_per_socket",
    "bytes_per_connection",
    "tls_bytes_per_connection",
    "source_addresses",
    "storm",
    "knobs",
];

/// Parses and checks one profile's text.
pub fn parse(text: &str) -> Result<RawProfile, Problem> {
    // First without positions: the `toml` crate cannot give positions for keys written dotted
    // and unquoted (`net.core.somaxconn = 1` under [knobs]), the commonest mistake; find those here.
    let plain: toml::Table = toml::from_str(text).map_err(|e| syntax_problem(text, &e))?;
    nested_tables(text, &plain)?;
    let top: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| syntax_problem(text, &e))?;
    let mut raw = RawProfile::default();
    for (key, value) in &top {
        let line = line_of(text, key.span().start);
        let name = key.get_ref().as_str();
        let v = value.get_ref();
        let problem = |message: String| Problem {
            line: Some(line),
            key: Some(name.to_string()),
            message,
        };
        match name {
            "description" => raw.description = Some(string(v).map_err(problem)?),
            "extends" => raw.extends = Some((string(v).map_err(problem)?, line)),
            "role" => raw.role = Some(role(v).map_err(problem)?),
            "target" => raw.target = Some(count(v, "concurrent connections").map_err(problem)?),
            "processes" => raw.processes = Some(count(v, "processes").map_err(problem)?),
            "source_addresses" => {
                raw.source_addresses = Some(count(v, "client source addresses").map_err(problem)?)
            }
            "storm" => {
                let s = string(v).map_err(|e| {
                    problem(format!("{e}: write the storm as text, e.g. storm = \"1M/30\" (a million clients reconnecting within 30 s)"))
                })?;
                raw.storm = Some(super::storm::parse(&s).map_err(problem)?);
            }
            "headroom_percent" => {
                raw.headroom_percent = Some(plain_int(v, "percent").map_err(problem)?)
            }
            "bytes_per_socket" => {
                raw.bytes_per_socket = Some(plain_int(v, "bytes").map_err(problem)?)
            }
            "bytes_per_connection" => {
                raw.bytes_per_connection = Some(plain_int(v, "bytes").map_err(problem)?)
            }
            "tls_bytes_per_connection" => {
                raw.tls_bytes_per_connection = Some(plain_int(v, "bytes").map_err(problem)?)
            }
            "knobs" => {
                if !v.is_table() {
                    return Err(problem(format!(
                        "expected a table of knob requirements, found {}: write a [knobs] line, then one \"knob.name\" = value per line",
                        kind(v)
                    )));
                }
                raw.knobs = knob_table(text)?;
            }
            other => return Err(problem(unknown_top_key(other, v))),
        }
    }
    Ok(raw)
}

/// Tables where a value belongs: an unquoted dotted knob name, or a top-level table other than
/// `[knobs]`. Positions come from a search of the text for the key as written.
fn nested_tables(text: &str, plain: &toml::Table) -> Result<(), Problem> {
    for (key, v) in plain {
        let toml::Value::Table(t) = v else { continue };
        if key == "knobs" {
            for (k, v) in t {
                if let toml::Value::Table(_) = v {
                    let (dotted, inner) = flatten(k, v)
                        .into_iter()
                        .next()
                        .unwrap_or((k.clone(), v.clone()));
                    return Err(Problem {
                        line: find_unquoted(text, &dotted, k),
                        key: Some(format!("knobs.{dotted}")),
                        message: format!(
                            "a knob name has dots, so it must be in quotes (without them TOML reads {dotted} as nested tables): write \"{dotted}\" = {inner}"
                        ),
                    });
                }
            }
        } else {
            let dotted = flatten(key, v)
                .into_iter()
                .map(|(k, _)| k)
                .next()
                .unwrap_or(key.clone());
            return Err(Problem {
                line: find_unquoted(text, &dotted, key),
                key: Some(dotted),
                message: unknown_top_key(key, v),
            });
        }
    }
    Ok(())
}

/// The line where `dotted` (or a table header of `first`) is written without quotes.
fn find_unquoted(text: &str, dotted: &str, first: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let squeezed = |l: &str| l.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    lines
        .iter()
        .position(|l| squeezed(l).starts_with(&format!("{dotted}=")))
        .or_else(|| {
            lines.iter().position(|l| {
                let l = squeezed(l);
                l.starts_with(&format!("{first}."))
                    || l.starts_with(&format!("[{first}"))
                    || l.starts_with(&format!("[knobs.{first}"))
            })
        })
        .map(|i| i + 1)
}

/// The message for a top-level key tune does not know.
fn unknown_top_key(key: &str, v: &toml::Value) -> String {
    let dotted = flatten(key, v).into_iter().map(|(k, _)| k).next();
    let as_knob = knobs::find(key).or_else(|| dotted.as_deref().and_then(knobs::find));
    if let Some(k) = as_knob {
        return format!(
            "{} is a knob: knob requirements go under a [knobs] line, with the name in quotes (\"{}\" = ...)",
            k.name, k.name
        );
    }
    match suggest(key, TOP_KEYS.iter().copied()) {
        Some(near) => format!(
            "unknown setting; did you mean {near}? (a profile has: {})",
            TOP_KEYS.join(", ")
        ),
        None => format!("unknown setting; a profile has: {}", TOP_KEYS.join(", ")),
    }
}

/// The `[knobs]` table again, this time with each key's position.
fn knob_table(text: &str) -> Result<Vec<(KnobId, Value, usize)>, Problem> {
    #[derive(serde::Deserialize)]
    struct KnobsOnly {
        #[serde(default)]
        knobs: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    }
    let only: KnobsOnly = toml::from_str(text).map_err(|e| syntax_problem(text, &e))?;
    let mut out = Vec::new();
    for (key, value) in only.knobs {
        let span: Range<usize> = key.span();
        let line = line_of(text, span.start);
        let name = key.get_ref();
        let problem = |message: String| Problem {
            line: Some(line),
            key: Some(format!("knobs.{name:?}")),
            message,
        };
        let knob = knobs::find(name).ok_or_else(|| problem(unknown_knob(name)))?;
        if knob.compare == Compare::Info && knob.persist == Persist::No {
            return Err(problem(
                "is a measurement, not a limit: it cannot be required; remove this line".into(),
            ));
        }
        let v = knob_value(knob, value.get_ref()).map_err(problem)?;
        out.push((knob.id, v, line));
    }
    out.sort_by_key(|(_, _, line)| *line);
    Ok(out)
}

fn unknown_knob(name: &str) -> String {
    // A profile names knobs in full; the matcher says which one a short name meant.
    match knobs::resolve(name) {
        Ok(k) => format!("unknown knob; write its full name: \"{}\"", k.name),
        Err(knobs::matcher::NoMatch::Ambiguous { matches, .. }) => format!(
            "unknown knob; it could be any of {}: write one's full name",
            matches.join(", ")
        ),
        Err(knobs::matcher::NoMatch::Unknown { near, .. }) if !near.is_empty() => {
            format!("unknown knob; did you mean \"{}\"?", near[0])
        }
        Err(_) => "unknown knob; `tune explain all` describes every knob a profile may set".into(),
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a typo.
fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `net = { core = { somaxconn = 1 } }` as `("net.core.somaxconn", 1)`.
fn flatten(prefix: &str, v: &toml::Value) -> Vec<(String, toml::Value)> {
    match v {
        toml::Value::Table(t) => t
            .iter()
            .flat_map(|(k, v)| flatten(&format!("{prefix}.{k}"), v))
            .collect(),
        other => vec![(prefix.to_string(), other.clone())],
    }
}

/// A knob's value from a number, an array of numbers or a string of numbers, within the kernel's bounds.
fn knob_value(knob: &Knob, v: &toml::Value) -> Result<Value, String> {
    let unit = knob.unit;
    let text = match v {
        toml::Value::Integer(n) if *n < 0 => {
            return Err(format!(
                "expected {} ({unit}) of 0 or more, found {n}",
                knob.shape.expected()
            ))
        }
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a)
            if a.iter()
                .all(|x| matches!(x, toml::Value::Integer(n) if *n >= 0)) =>
        {
            a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => {
            return Err(format!(
                "expected {} ({unit}), found {}",
                knob.shape.expected(),
                kind(other)
            ))
        }
    };
    let value = Value::parse(knob.shape, &text).map_err(|e| format!("{e} ({unit})"))?;
    match (knob.shape, value) {
        (Shape::Range, Value::Range([lo, hi])) if lo > hi => {
            return Err(format!("the low end comes first: write [{hi}, {lo}]"))
        }
        (Shape::Triple, Value::Triple([a, b, c])) if a > b || b > c => {
            let mut s = [a, b, c];
            s.sort_unstable();
            return Err(format!(
                "expected low <= pressure <= high, found {value}: write [{}, {}, {}]",
                s[0], s[1], s[2]
            ));
        }
        _ => {}
    }
    kernel_bounds(knob, &value)?;
    Ok(value)
}

/// The registry's fixed kernel bounds, in words: the knob, the range and the largest/smallest value to write.
fn kernel_bounds(knob: &Knob, value: &Value) -> Result<(), String> {
    let Some((lo, hi)) = knob.accepts else {
        return Ok(());
    };
    let g = crate::units::group;
    let named = |n: u64| match n {
        n if n == i32::MAX as u64 => format!("{} (INT_MAX)", g(n)),
        n if n == i64::MAX as u64 => format!("{} (LONG_MAX)", g(n)),
        n => g(n),
    };
    let number = |n: u64| {
        if n == knobs::UNLIMITED {
            "unlimited".to_string()
        } else {
            g(n)
        }
    };
    let accepts = format!(
        "the kernel accepts {} to {} for {}",
        named(lo),
        named(hi),
        knob.name
    );
    if let Some(n) = value.parts().iter().find(|n| **n > hi) {
        return Err(format!(
            "{} is too large: {accepts}; write at most {hi}",
            number(*n)
        ));
    }
    if let Some(n) = value.parts().iter().find(|n| **n < lo) {
        return Err(format!(
            "{} is too small: {accepts}; write at least {lo}",
            number(*n)
        ));
    }
    Ok(())
}

fn string(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        other => Err(format!(
            "expected text in double quotes, found {}",
            kind(other)
        )),
    }
}

fn role(v: &toml::Value) -> Result<Role, String> {
    let expected = "expected \"server\", \"client\" or \"loopback\"";
    match v {
        toml::Value::String(s) => match s.as_str() {
            "server" => Ok(Role::Server),
            "client" => Ok(Role::Client),
            "loopback" => Ok(Role::Loopback),
            other => Err(format!("{expected}, found {other:?}")),
        },
        other => Err(format!("{expected} (in quotes), found {}", kind(other))),
    }
}

/// A count: a non-negative integer, or a string with a thousands/million suffix.
fn count(v: &toml::Value, what: &str) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        toml::Value::Integer(n) => Err(format!(
            "expected the number of {what}, 0 or more, found {n}"
        )),
        toml::Value::String(s) => parse_count(s),
        other => Err(format!(
            "expected the number of {what} ({COUNT_FORMS}), found {}",
            kind(other)
        )),
    }
}

/// A non-negative integer without suffixes (a percentage, a byte count).
fn plain_int(v: &toml::Value, unit: &str) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        other => Err(format!(
            "expected a whole number of {unit}, 0 or more, found {}",
            kind(other)
        )),
    }
}

/// A TOML value named as the user wrote it.
fn kind(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the text {s:?}"),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(f) => format!("the number {f} (with a fraction)"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => format!("a list {v}"),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

/// A TOML syntax error in words: the line, its key and what to write.
fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|s| line_of(text, s.start));
    let src = line.and_then(|l| text.lines().nth(l - 1)).unwrap_or("");
    let (key, rhs) = match src.split_once('=') {
        Some((k, v)) if !k.trim().starts_with('#') => (Some(k.trim().to_string()), v.trim()),
        _ => (None, ""),
    };
    let msg = e.message().trim();
    let value = rhs.split('#').next().unwrap_or("").trim();
    let message = if let Some(dup) = msg
        .strip_prefix("duplicate key `")
        .and_then(|r| r.split('`').next())
    {
        format!("{dup} is set twice; keep one of the two lines")
    } else if value.starts_with('"') && value.matches('"').count() % 2 == 1 {
        format!(
            "the text has no closing quote: write {} = {value}\"",
            key.as_deref().unwrap_or("key")
        )
    } else if looks_like_suffixed_number(value) {
        format!(
            "a number with a suffix must be in quotes: write \"{value}\", or the plain number{}",
            parse_count(value)
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        )
    } else if value.contains(',') && value.chars().all(|c| c.is_ascii_digit() || c == ',') {
        format!(
            "a number cannot have commas in TOML: write {} (or 1_000 style, or in quotes)",
            value.replace(',', "")
        )
    } else {
        let first = msg.lines().next().unwrap_or(msg);
        format!(
            "this line is not valid TOML ({first}): write key = value, text in double quotes, \
             knob names in quotes under [knobs] (\"{}\" = 4096)",
            KnobId::Somaxconn
        )
    };
    Problem { line, key, message }
}

fn looks_like_suffixed_number(v: &str) -> bool {
    let v = v.trim();
    v.len() > 1
        && v.chars().next().is_some_and(|c| c.is_ascii_digit())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphabetic())
        && v[..v.len() - 1]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_numbers_are_spotted() {
        assert!(looks_like_suffixed_number("50k"));
        assert!(looks_like_suffixed_number("1.5m"));
        assert!(!looks_like_suffixed_number("\"50k\""));
        assert!(!looks_like_suffixed_number("k"));
    }

    #[test]
    fn dotted_names_are_flattened() {
        let v: toml::Value = toml::from_str("a = { b = { c = 1 } }").unwrap();
        let flat = flatten("x", &v);
        assert_eq!(flat, vec![("x.a.b.c".to_string(), toml::Value::Integer(1))]);
    }
}
