//! A systemd unit's settings that size a service before it runs (User=, DynamicUser=, PAMName=, LimitNOFILE=, MemoryMax=, MemoryHigh=, MemoryLimit=, AmbientCapabilities=, CapabilityBoundingSet=), parsed from text.
//!
//! The syntax is systemd.syntax(7) and the values systemd.exec(5) / systemd.resource-control(5)
//! of systemd 252 (Debian 12): a line is `Key=Value` inside a `[Section]`; `#` and `;` start a
//! comment line; a line ending in `\` continues on the next; an empty value resets the setting
//! to its default; of several assignments the last read wins, drop-ins read after the unit.
//! `LimitNOFILE=` takes `N`, `SOFT:HARD` or `infinity` (either side); sizes are bytes with
//! base-1024 suffixes (K, M, G, T, P, E), a percentage of physical memory, or `infinity`.
//! Reading the unit and its drop-ins is in [`super::service`].

use super::limits::Nofile;

/// A setting and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<T> {
    pub value: T,
    /// The file, as it will be shown (path under the root).
    pub file: String,
    pub line: usize,
}

impl<T> Set<T> {
    /// `FILE:LINE`, for the report.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// A memory limit as a unit writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Bytes(u64),
    /// Percent of physical memory (MemTotal).
    Percent(f64),
    Infinity,
}

impl Size {
    /// Bytes, given MemTotal for percentages; `None`: no limit.
    pub fn bytes(self, mem_total: u64) -> Option<u64> {
        match self {
            Size::Bytes(b) => Some(b),
            Size::Percent(p) => Some((mem_total as f64 * p / 100.0) as u64),
            Size::Infinity => None,
        }
    }
}

/// What a unit (with its drop-ins) says about the service's credentials and limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitSettings {
    /// `User=`: a name or a uid. Unset: root.
    pub user: Option<Set<String>>,
    pub dynamic_user: Option<Set<bool>>,
    /// `PAMName=`: a PAM session is opened, so pam_limits applies on top of LimitNOFILE=.
    pub pam_name: Option<Set<String>>,
    /// `LimitNOFILE=`: soft and hard.
    pub nofile: Option<Set<(Nofile, Nofile)>>,
    pub memory_max: Option<Set<Size>>,
    pub memory_high: Option<Set<Size>>,
    /// `MemoryLimit=`, the cgroup v1 name (used when MemoryMax= is unset).
    pub memory_limit: Option<Set<Size>>,
    /// `AmbientCapabilities=`: capability names granted to a non-root User=.
    pub ambient: Option<Set<Vec<String>>>,
    /// `CapabilityBoundingSet=`: what root keeps; `None`: all.
    pub bounding: Option<Set<Vec<String>>>,
}

/// A line systemd would reject, named by file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for UnitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for UnitError {}

/// The default DefaultLimitNOFILE= of systemd since v240 (systemd-system.conf(5)): soft 1024
/// (select() breaks above it), hard 524288.
pub const SYSTEMD_DEFAULT_NOFILE: (u64, u64) = (1024, 524_288);

/// Reads `DefaultLimitNOFILE=` of one system.conf file (`[Manager]`) over `prev`.
pub fn default_nofile(
    prev: Option<Set<(Nofile, Nofile)>>,
    file: &str,
    text: &str,
) -> Result<Option<Set<(Nofile, Nofile)>>, UnitError> {
    let mut out = prev;
    for (line, section, key, value) in assignments(text) {
        if section != "Manager" || key != "DefaultLimitNOFILE" {
            continue;
        }
        out = if value.is_empty() {
            None
        } else {
            Some(Set {
                value: nofile(&value).map_err(|why| UnitError {
                    file: file.to_string(),
                    line,
                    message: format!("{key}={value}: {why}"),
                })?,
                file: file.to_string(),
                line,
            })
        };
    }
    Ok(out)
}

/// Reads one file of the unit (the unit itself, then each drop-in in order) into `s`.
pub fn apply(s: &mut UnitSettings, file: &str, text: &str) -> Result<(), UnitError> {
    for (line, section, key, value) in assignments(text) {
        if section != "Service" {
            continue;
        }
        let err = |why: String| UnitError {
            file: file.to_string(),
            line,
            message: format!("{key}={value}: {why}"),
        };
        let empty = value.is_empty();
        match key.as_str() {
            "User" => {
                s.user = if empty {
                    None
                } else {
                    at(file, line, value.clone())
                }
            }
            "DynamicUser" => {
                s.dynamic_user = if empty {
                    None
                } else {
                    at(
                        file,
                        line,
                        boolean(&value).ok_or_else(|| err("expected yes or no".into()))?,
                    )
                }
            }
            "PAMName" => {
                s.pam_name = if empty {
                    None
                } else {
                    at(file, line, value.clone())
                }
            }
            "LimitNOFILE" => {
                s.nofile = if empty {
                    None
                } else {
                    at(file, line, nofile(&value).map_err(err)?)
                }
            }
            "MemoryMax" | "MemoryHigh" | "MemoryLimit" => {
                let v = if empty {
                    None
                } else {
                    at(file, line, size(&value).map_err(err)?)
                };
                match key.as_str() {
                    "MemoryMax" => s.memory_max = v,
                    "MemoryHigh" => s.memory_high = v,
                    _ => s.memory_limit = v,
                }
            }
            "AmbientCapabilities" | "CapabilityBoundingSet" => {
                let slot = if key == "AmbientCapabilities" {
                    &mut s.ambient
                } else {
                    &mut s.bounding
                };
                *slot = if empty {
                    None
                } else {
                    let prev = slot.as_ref().map(|p| p.value.clone());
                    at(file, line, capabilities(prev, &value))
                };
            }
            _ => {}
        }
    }
    Ok(())
}

/// `(line, section, key, value)` of each assignment, continuation lines joined.
fn assignments(text: &str) -> Vec<(usize, String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        let (start, mut joined) = match pending.take() {
            Some((start, so_far)) => (start, so_far + " " + trimmed),
            None => {
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                    continue;
                }
                (i + 1, trimmed.to_string())
            }
        };
        if let Some(head) = joined.strip_suffix('\\') {
            joined = head.trim_end().to_string();
            pending = Some((start, joined));
            continue;
        }
        if joined.starts_with('[') && joined.ends_with(']') {
            section = joined[1..joined.len() - 1].to_string();
            continue;
        }
        if let Some((k, v)) = joined.split_once('=') {
            out.push((start, section.clone(), k.trim().into(), v.trim().into()));
        }
    }
    out
}

fn at<T>(file: &str, line: usize, value: T) -> Option<Set<T>> {
    Some(Set {
        value,
        file: file.to_string(),
        line,
    })
}

fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// `N`, `SOFT:HARD`, `infinity`: one value sets both.
fn nofile(v: &str) -> Result<(Nofile, Nofile), String> {
    let one = |s: &str| -> Result<Nofile, String> {
        if s.eq_ignore_ascii_case("infinity") {
            return Ok(Nofile::Unlimited);
        }
        s.parse::<u64>().map(Nofile::Value).map_err(|_| {
            format!(
                "{s:?} is not a count or infinity (LimitNOFILE= takes N, SOFT:HARD or infinity)"
            )
        })
    };
    let (soft, hard) = match v.split_once(':') {
        Some((s, h)) => (one(s.trim())?, one(h.trim())?),
        None => {
            let n = one(v)?;
            (n, n)
        }
    };
    if soft > hard {
        return Err("the soft limit is above the hard one; systemd refuses it".into());
    }
    Ok((soft, hard))
}

/// A size as systemd.resource-control(5) takes it.
fn size(v: &str) -> Result<Size, String> {
    if v.eq_ignore_ascii_case("infinity") {
        return Ok(Size::Infinity);
    }
    let bad = || {
        format!("{v:?} is not a size (bytes with K, M, G, T, P or E, a percentage, or infinity)")
    };
    if let Some(p) = v.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        return if (0.0..=100.0).contains(&p) {
            Ok(Size::Percent(p))
        } else {
            Err(bad())
        };
    }
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let shift = match suffix.trim() {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        "E" => 60,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    Ok(Size::Bytes((n * (1u64 << shift) as f64) as u64))
}

/// A capability list: names separated by spaces; a leading `~` inverts it (all but these);
/// a later line adds to the earlier one (systemd.exec(5)). Inverted lists are kept with a
/// leading `~` entry.
fn capabilities(prev: Option<Vec<String>>, v: &str) -> Vec<String> {
    let (inverted, rest) = match v.strip_prefix('~') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let names = rest.split_whitespace().map(|c| c.to_ascii_uppercase());
    if inverted {
        std::iter::once("~".to_string()).chain(names).collect()
    } else {
        prev.unwrap_or_default().into_iter().chain(names).collect()
    }
}

/// Whether a capability list holds `cap` (`CAP_SYS_ADMIN`).
pub fn holds(list: &[String], cap: &str) -> bool {
    match list.first().map(String::as_str) {
        Some("~") => !list[1..].iter().any(|c| c == cap),
        _ => list.iter().any(|c| c == cap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UnitSettings, UnitError> {
        let mut s = UnitSettings::default();
        apply(&mut s, "/etc/systemd/system/echo.service", text)?;
        Ok(s)
    }

    #[test]
    fn the_settings_that_size_a_service_are_read_from_the_service_section() {
        let s = parse(
            "[Unit]\nDescription=echo\nUser=ignored\n\n[Service]\n# a comment\n; another\nUser=www-data\n\
             LimitNOFILE=65536:\\\n  524288\nMemoryMax=512M\nMemoryHigh=50%\nExecStart=/usr/bin/echo\n",
        )
        .unwrap();
        assert_eq!(s.user.as_ref().unwrap().value, "www-data");
        assert_eq!(s.user.as_ref().unwrap().line, 8);
        let n = s.nofile.unwrap();
        assert_eq!(n.value, (Nofile::Value(65536), Nofile::Value(524_288)));
        assert_eq!(n.line, 9, "a continued line is named by its first line");
        assert_eq!(s.memory_max.unwrap().value, Size::Bytes(512 << 20));
        assert_eq!(s.memory_high.unwrap().value.bytes(1000), Some(500));
    }

    #[test]
    fn infinity_one_value_and_an_empty_reset() {
        let s = parse("[Service]\nLimitNOFILE=infinity\nMemoryMax=infinity\n").unwrap();
        assert_eq!(
            s.nofile.unwrap().value,
            (Nofile::Unlimited, Nofile::Unlimited)
        );
        assert_eq!(s.memory_max.unwrap().value.bytes(1 << 30), None);
        let s = parse("[Service]\nLimitNOFILE=4096\nLimitNOFILE=\nUser=a\nUser=\n").unwrap();
        assert_eq!(s.nofile, None, "an empty assignment resets to the default");
        assert_eq!(s.user, None);
        let s = parse("[Service]\nLimitNOFILE=1024:infinity\nMemoryLimit=1.5G\n").unwrap();
        assert_eq!(
            s.nofile.unwrap().value,
            (Nofile::Value(1024), Nofile::Unlimited)
        );
        assert_eq!(s.memory_limit.unwrap().value, Size::Bytes(3 << 29));
    }

    #[test]
    fn bad_values_name_the_file_line_and_setting() {
        let e = parse("[Service]\nUser=a\nLimitNOFILE=lots\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string().starts_with(
                "/etc/systemd/system/echo.service:3: LimitNOFILE=lots: \"lots\" is not a count"
            ),
            "{e}"
        );
        let e = parse("[Service]\nLimitNOFILE=4096:1024\n").unwrap_err();
        assert!(
            e.to_string().contains("soft limit is above the hard one"),
            "{e}"
        );
        let e = parse("[Service]\nMemoryMax=12Q\n").unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: MemoryMax=12Q: \"12Q\" is not a size"),
            "{e}"
        );
        let e = parse("[Service]\nDynamicUser=perhaps\n").unwrap_err();
        assert!(e.to_string().contains("expected yes or no"), "{e}");
    }

    #[test]
    fn capability_lists_add_up_and_invert() {
        let s = parse("[Service]\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nAmbientCapabilities=cap_sys_admin\n")
            .unwrap();
        assert!(holds(&s.ambient.unwrap().value, "CAP_SYS_ADMIN"));
        let s = parse("[Service]\nCapabilityBoundingSet=~CAP_SYS_ADMIN CAP_SYS_PTRACE\n").unwrap();
        let b = s.bounding.unwrap().value;
        assert!(!holds(&b, "CAP_SYS_ADMIN"));
        assert!(holds(&b, "CAP_SYS_RESOURCE"));
    }
}
