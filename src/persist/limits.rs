//! The pam_limits view of RLIMIT_NOFILE: which nofile limits new login sessions get from limits.conf and limits.d, and which lines override tune's file.
//!
//! The rules, from pam_limits(8) and limits.conf(5) of Linux-PAM 1.5.2 as Debian 12 ships it
//! (libpam-modules 1.5.2-6+deb12u1, the man pages on this machine), checked against pam_limits.c:
//!
//! - /etc/security/limits.conf is read first, then the `*.conf` files of /etc/security/limits.d
//!   "one after another in the order of \"C\" locale" (byte order of the names; the glob skips
//!   names starting with a dot). "The effect of the individual files is the same as if all the
//!   files were concatenated together in the order of parsing."
//! - A line is `<domain> <type> <item> <value>`; `#` starts a comment; type `soft`, `hard` or `-`
//!   (both); the value `-1`, `unlimited` or `infinity` means no limit (for nofile: fs.nr_open).
//! - "Individual limits have priority over group limits": pam_limits.c ranks the line that set a
//!   value (a user name or uid range, then `@group` or gid range, then the `*` default) and a later
//!   line takes effect only when its rank is the same or more specific. So among lines of one rank
//!   the last one read wins, and a line naming a user beats `*` whatever the file order.
//! - "Group and wildcard limits are not applied to the root user" (Debian's limits.conf(5); upstream
//!   applies `*` to root too, but a `root` line outranks `*` either way, and tune writes `root` lines).
//! - A two-field line `<domain> -` makes pam_limits set no limits at all for that user's (or group's)
//!   sessions, wherever it is: parsing stops and the module returns without setting any.
//!
//! Parsing takes text ([`parse`], [`warnings`]); file access is in [`gather`], through the root.

use crate::persist::boot::ConfFile;
use crate::root::Root;

/// Read first by pam_limits.
pub const LIMITS_CONF: &str = "etc/security/limits.conf";
/// Then its `*.conf` files, in name order.
pub const LIMITS_D: &str = "etc/security/limits.d";

/// Who a line is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Domain {
    /// A user name.
    User(String),
    /// `min:max`, `:uid` or `min:` (ranked like a user).
    UidRange(String),
    /// `@group`.
    Group(String),
    /// `@min:max` and friends (ranked like a group).
    GidRange(String),
    /// `*`, the default for everyone not named (never root on Debian).
    Wildcard,
}

impl Domain {
    /// pam_limits.c's ranks: LIMITS_DEF_USER 0, LIMITS_DEF_GROUP 1, LIMITS_DEF_DEFAULT 4.
    fn rank(&self) -> u8 {
        match self {
            Domain::User(_) | Domain::UidRange(_) => 0,
            Domain::Group(_) | Domain::GidRange(_) => 1,
            Domain::Wildcard => 4,
        }
    }

    fn classify(d: &str) -> Option<Domain> {
        if d == "*" {
            return Some(Domain::Wildcard);
        }
        // `%` domains are for maxlogins only: pam_limits ignores them for resource limits.
        if d.starts_with('%') || d.is_empty() {
            return None;
        }
        let (group, rest) = match d.strip_prefix('@') {
            Some(r) => (true, r),
            None => (false, d),
        };
        if let Some((lo, hi)) = rest.split_once(':') {
            let num = |s: &str| s.is_empty() || s.bytes().all(|b| b.is_ascii_digit());
            // pam_limits skips a malformed range (and `:` alone).
            if !num(lo) || !num(hi) || (lo.is_empty() && hi.is_empty()) {
                return None;
            }
            return Some(if group {
                Domain::GidRange(d.to_string())
            } else {
                Domain::UidRange(d.to_string())
            });
        }
        Some(if group {
            Domain::Group(rest.to_string())
        } else {
            Domain::User(d.to_string())
        })
    }

    /// True for a domain that reaches root's sessions: `root`, or a uid range holding 0.
    fn is_root(&self) -> bool {
        match self {
            Domain::User(u) => u == "root",
            Domain::UidRange(r) => {
                let (lo, hi) = r.split_once(':').unwrap_or((r, r));
                if lo.is_empty() {
                    // `:uid` is that uid exactly.
                    hi.parse::<u64>().ok() == Some(0)
                } else {
                    lo.parse::<u64>().ok() == Some(0)
                }
            }
            _ => false,
        }
    }

    /// True for a domain that reaches root's sessions and no other: `root`, or the uid range `:0`.
    fn only_root(&self) -> bool {
        match self {
            Domain::User(u) => u == "root",
            Domain::UidRange(r) => r.split_once(':').is_some_and(|(lo, hi)| {
                (lo.is_empty() || lo.parse::<u64>().ok() == Some(0))
                    && hi.parse::<u64>().ok() == Some(0)
            }),
            _ => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Domain::User(_) => "user",
            Domain::UidRange(_) => "uid range",
            Domain::Group(_) => "group",
            Domain::GidRange(_) => "gid range",
            Domain::Wildcard => "`*`",
        }
    }

    fn describe(&self) -> String {
        match self {
            Domain::User(u) => format!("user {u}"),
            Domain::UidRange(r) => format!("uids {r}"),
            Domain::Group(g) => format!("members of @{g}"),
            Domain::GidRange(r) => format!("gids {}", r.trim_start_matches('@')),
            Domain::Wildcard => "every user not named elsewhere (*)".into(),
        }
    }
}

/// A nofile value; `Unlimited` becomes fs.nr_open, never lower than what tune asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Nofile {
    Value(u64),
    Unlimited,
}

impl std::fmt::Display for Nofile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Nofile::Value(v) => write!(f, "{v}"),
            Nofile::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// One `nofile` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub domain: Domain,
    pub soft: bool,
    pub hard: bool,
    pub value: Nofile,
}

/// What one file says about nofile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    /// `<domain> -` lines: no limits at all for that domain's sessions.
    pub no_limits: Vec<(usize, Domain)>,
}

/// Parses limits.conf text the way pam_limits does, keeping the nofile lines and the no-limit lines.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [domain, "-"] => {
                if let Some(d) = Domain::classify(domain).filter(|d| *d != Domain::Wildcard) {
                    out.no_limits.push((i + 1, d));
                }
            }
            [domain, ty, item, value, ..] => {
                if !item.eq_ignore_ascii_case("nofile") {
                    continue;
                }
                let (soft, hard) = match ty.to_ascii_lowercase().as_str() {
                    "soft" => (true, false),
                    "hard" => (false, true),
                    "-" => (true, true),
                    _ => continue,
                };
                let v = value.to_ascii_lowercase();
                let value = if ["-1", "-", "unlimited", "infinity"].contains(&v.as_str()) {
                    Nofile::Unlimited
                } else {
                    // strtoull: the leading digits count; no digits and pam_limits skips the line.
                    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                    match digits.parse() {
                        Ok(n) => Nofile::Value(n),
                        Err(_) => continue,
                    }
                };
                let Some(domain) = Domain::classify(domain) else {
                    continue;
                };
                out.entries.push(Entry {
                    line: i + 1,
                    domain,
                    soft,
                    hard,
                    value,
                });
            }
            _ => {}
        }
    }
    out
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source<'a> {
    file: &'a str,
    line: usize,
    value: Nofile,
    rank: u8,
    /// What kind of line: "user", "uid range", "group", "gid range" or "`*`".
    kind: &'static str,
    own: bool,
}

/// The soft and hard nofile a session of `who` gets, replaying the files in order with pam_limits'
/// rank rule. `applies` says which domains reach the session.
fn effective<'a>(
    files: &'a [(ConfFile, Parsed)],
    applies: &dyn Fn(&Domain) -> bool,
    own: &dyn Fn(&Domain) -> bool,
) -> [Option<Source<'a>>; 2] {
    let mut out: [Option<Source>; 2] = [None, None];
    for (f, p) in files {
        for e in &p.entries {
            if !applies(&e.domain) {
                continue;
            }
            for (slot, on) in out.iter_mut().zip([e.soft, e.hard]) {
                let rank = e.domain.rank();
                if on && slot.is_none_or(|s| rank <= s.rank) {
                    *slot = Some(Source {
                        file: &f.rel,
                        line: e.line,
                        value: e.value,
                        rank,
                        kind: e.domain.kind(),
                        own: own(&e.domain),
                    });
                }
            }
        }
    }
    out
}

/// Warnings for sessions that get a lower nofile than tune's file (`ours`, relative to the root)
/// sets, because another line wins by pam_limits' rules. `files` are in reading order and include
/// tune's file; `show` turns a relative path into the path to print.
pub fn warnings(files: &[ConfFile], ours: &str, show: &dyn Fn(&str) -> String) -> Vec<String> {
    let parsed: Vec<(ConfFile, Parsed)> =
        files.iter().map(|f| (f.clone(), parse(&f.text))).collect();
    let Some((_, mine)) = parsed.iter().find(|(f, _)| f.rel == ours) else {
        return Vec::new();
    };
    // What tune's file sets: for root (its `root` lines) and for everyone else (its `*` lines).
    let wanted = |root: bool| -> [Option<Nofile>; 2] {
        let mut w = [None, None];
        for e in mine.entries.iter().filter(|e| {
            if root {
                e.domain == Domain::User("root".into())
            } else {
                e.domain == Domain::Wildcard
            }
        }) {
            for (slot, on) in w.iter_mut().zip([e.soft, e.hard]) {
                if on {
                    *slot = Some(e.value);
                }
            }
        }
        w
    };
    let mut subjects: Vec<(Domain, bool)> = vec![(Domain::User("root".into()), true)];
    subjects.push((Domain::Wildcard, false));
    for (f, p) in &parsed {
        if f.rel == ours {
            continue;
        }
        for d in p.entries.iter().map(|e| &e.domain) {
            if *d != Domain::Wildcard && !d.only_root() && !subjects.iter().any(|(s, _)| s == d) {
                subjects.push((d.clone(), false));
            }
        }
    }
    let read_after = |file: &str| {
        let pos = |r: &str| files.iter().position(|f| f.rel == r);
        pos(file) > pos(ours)
    };
    let mut out = Vec::new();
    for (subject, root) in &subjects {
        let want = wanted(*root);
        if want.iter().all(Option::is_none) {
            continue;
        }
        let applies = |d: &Domain| {
            if *root {
                d.is_root()
            } else {
                d == subject || *d == Domain::Wildcard
            }
        };
        let own = |d: &Domain| if *root { d.is_root() } else { d == subject };
        let got = effective(&parsed, &applies, &own);
        let who = if *root {
            "root".to_string()
        } else {
            subject.describe()
        };
        // One warning per winning line (a `-` line sets soft and hard at once).
        let mut lowered: Vec<(&str, Source)> = Vec::new();
        for ((name, w), g) in ["soft", "hard"].iter().zip(want).zip(got) {
            let (Some(w), Some(g)) = (w, g) else { continue };
            if g.file == ours || g.value >= w {
                continue;
            }
            // For a named subject only its own lines are news; a later `*` line is reported once, for `*`.
            if !*root && *subject != Domain::Wildcard && !g.own {
                continue;
            }
            lowered.push((name, g));
        }
        let mut i = 0;
        while i < lowered.len() {
            let (name, g) = lowered[i];
            let both = lowered
                .get(i + 1)
                .is_some_and(|(_, h)| h.file == g.file && h.line == g.line && h.value == g.value);
            let kind = if both { "soft and hard" } else { name };
            let w = wanted(*root)[usize::from(name == "hard")].unwrap_or(g.value);
            let why = if g.rank < Domain::Wildcard.rank() && !*root {
                format!(
                    "a {} line outranks tune's `*` line whatever the file order (limits.conf(5): \
                     individual limits have priority over group limits)",
                    g.kind
                )
            } else if read_after(g.file) {
                format!(
                    "it is read after {} and the last line for the same domain wins (pam_limits(8): \
                     limits.conf, then limits.d in name order)",
                    show(ours)
                )
            } else {
                "it wins by pam_limits' rules".to_string()
            };
            out.push(format!(
                "nofile ({kind}) for {who}: {}:{} sets {}; {why}, so new login sessions get {} not {}; \
                 remove that line or give it at least {}",
                show(g.file),
                g.line,
                g.value,
                g.value,
                w,
                w
            ));
            i += if both { 2 } else { 1 };
        }
    }
    // `<domain> -` anywhere: pam_limits sets nothing for those sessions, tune's lines included.
    for (f, p) in &parsed {
        if f.rel == ours {
            continue;
        }
        for (line, d) in &p.no_limits {
            let root = d.is_root();
            if wanted(root).iter().all(Option::is_none) {
                continue;
            }
            let who = if root {
                "root".to_string()
            } else {
                d.describe()
            };
            out.push(format!(
                "nofile for {who}: {}:{line} says `-` (no limits), so pam_limits sets no limits at all for \
                 those sessions and tune's lines in {} do not reach them; remove that line if they should",
                show(&f.rel),
                show(ours)
            ));
        }
    }
    out
}

/// Whom a session is for, as pam_limits matches domains: the user, its uid and its groups
/// (name and gid; the primary group included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u64,
    pub groups: Vec<(String, u64)>,
}

impl Domain {
    /// Does a line for this domain reach a session of `a`? Group and `*` lines never reach root
    /// (Debian's rule, above); `:N` is uid N exactly, `N:` N and above.
    fn reaches(&self, a: &Account) -> bool {
        let in_range = |r: &str, id: u64| {
            let r = r.trim_start_matches('@');
            let (lo, hi) = r.split_once(':').unwrap_or((r, r));
            let n = |s: &str| s.parse::<u64>().ok();
            match (lo.is_empty(), hi.is_empty()) {
                (true, _) => n(hi) == Some(id),
                (false, true) => n(lo).is_some_and(|l| id >= l),
                (false, false) => n(lo).is_some_and(|l| id >= l) && n(hi).is_some_and(|h| id <= h),
            }
        };
        let root = a.uid == 0;
        match self {
            Domain::User(u) => *u == a.name,
            Domain::UidRange(r) => in_range(r, a.uid),
            Domain::Group(g) => !root && a.groups.iter().any(|(name, _)| name == g),
            Domain::GidRange(r) => !root && a.groups.iter().any(|(_, gid)| in_range(r, *gid)),
            Domain::Wildcard => !root,
        }
    }
}

/// A nofile value pam_limits sets, and the line that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBy {
    pub value: Nofile,
    /// Relative to the root.
    pub file: String,
    pub line: usize,
}

/// What pam_limits gives a new session of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionNofile {
    /// Soft and hard; `None`: no line reaches the session, which keeps what it inherited.
    pub soft: Option<SetBy>,
    pub hard: Option<SetBy>,
    /// A `<domain> -` line that reaches it: pam_limits then sets no limits at all.
    pub off: Option<SetBy>,
}

/// The nofile limits pam_limits sets for a session of `who`, replaying `files` (in reading
/// order) with its rank rule.
pub fn for_account(files: &[ConfFile], who: &Account) -> SessionNofile {
    let parsed: Vec<(ConfFile, Parsed)> =
        files.iter().map(|f| (f.clone(), parse(&f.text))).collect();
    for (f, p) in &parsed {
        if let Some((line, _)) = p.no_limits.iter().find(|(_, d)| d.reaches(who)) {
            return SessionNofile {
                off: Some(SetBy {
                    value: Nofile::Unlimited,
                    file: f.rel.clone(),
                    line: *line,
                }),
                ..Default::default()
            };
        }
    }
    let [soft, hard] = effective(&parsed, &|d| d.reaches(who), &|_| false).map(|s| {
        s.map(|s| SetBy {
            value: s.value,
            file: s.file.to_string(),
            line: s.line,
        })
    });
    SessionNofile {
        soft,
        hard,
        off: None,
    }
}

/// limits.conf and the limits.d files pam_limits reads, in its order, through the root. `extra`
/// (the file tune is about to write, with its would-be text) replaces or joins the listing.
pub fn gather(root: &Root, extra: Option<&ConfFile>) -> anyhow::Result<Vec<ConfFile>> {
    let mut files = Vec::new();
    if let Some(b) = root.read_bytes_opt(LIMITS_CONF)? {
        files.push(ConfFile {
            rel: LIMITS_CONF.into(),
            text: String::from_utf8_lossy(&b).into_owned(),
        });
    }
    let mut names: Vec<String> = root
        .list_dir(LIMITS_D)?
        .into_iter()
        .filter(|n| n.ends_with(".conf") && !n.starts_with('.'))
        .collect();
    if let Some((dir, name)) = extra.and_then(|x| x.rel.rsplit_once('/')) {
        if dir == LIMITS_D && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    // "C" locale order: bytes.
    names.sort();
    for name in names {
        let rel = format!("{LIMITS_D}/{name}");
        if let Some(x) = extra.filter(|x| x.rel == rel) {
            files.push(x.clone());
            continue;
        }
        if root.is_dir(&rel) {
            continue;
        }
        if let Some(b) = root.read_bytes_opt(&rel)? {
            files.push(ConfFile {
                rel,
                text: String::from_utf8_lossy(&b).into_owned(),
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "etc/security/limits.d/90-tune.conf";
    // What `tune apply --persist --profile 1m` writes (src/persist/mod.rs, nofile_files).
    const TUNE: &str = "# Written by `tune apply --persist` for profile 1m.\n\
        *     soft nofile 1048576\n*     hard nofile 1048576\n\
        root  soft nofile 1048576\nroot  hard nofile 1048576\n";

    fn f(rel: &str, text: &str) -> ConfFile {
        ConfFile {
            rel: rel.into(),
            text: text.into(),
        }
    }

    fn warn(files: &[ConfFile]) -> Vec<String> {
        warnings(files, OURS, &|r| format!("/{r}"))
    }

    #[test]
    fn a_session_gets_the_most_specific_line_that_reaches_its_account() {
        let files = [
            f(
                "etc/security/limits.conf",
                "*  soft nofile 4096\n@web hard nofile 200000\n",
            ),
            f(
                "etc/security/limits.d/50-www.conf",
                "www-data soft nofile 100000\n* soft nofile 8192\n",
            ),
        ];
        let www = Account {
            name: "www-data".into(),
            uid: 33,
            groups: vec![("www-data".into(), 33), ("web".into(), 1001)],
        };
        let s = for_account(&files, &www);
        let soft = s.soft.unwrap();
        assert_eq!(
            (soft.value, soft.file.as_str(), soft.line),
            (
                Nofile::Value(100_000),
                "etc/security/limits.d/50-www.conf",
                1
            ),
            "a user line outranks a later `*` line"
        );
        assert_eq!(s.hard.unwrap().value, Nofile::Value(200_000));
        let root = Account {
            name: "root".into(),
            uid: 0,
            groups: vec![("root".into(), 0), ("web".into(), 1001)],
        };
        let r = for_account(&files, &root);
        assert_eq!(
            (r.soft, r.hard),
            (None, None),
            "group and `*` lines skip root"
        );
        let off = for_account(&[f("etc/security/limits.conf", "@web -\n")], &www);
        assert_eq!(off.off.unwrap().line, 1);
    }

    #[test]
    fn debian_limits_conf_as_shipped_sets_nothing() {
        // Debian 12.11, libpam-modules 1.5.2-6+deb12u1: /etc/security/limits.conf, all commented out.
        let text = include_str!("../../tests/fixtures/apply/debian12/limits.conf");
        assert_eq!(parse(text), Parsed::default());
        let files = [f(LIMITS_CONF, text), f(OURS, TUNE)];
        assert!(warn(&files).is_empty());
    }

    #[test]
    fn parses_like_pam_limits() {
        let p = parse(
            "  alice  HARD  NOFILE 4096   # comment\n\
             @web soft nofile unlimited\n\
             1000: - nofile 8192\n\
             @:27 hard nofile 10\n\
             %admins - maxlogins 4\n\
             * soft nproc 100\n\
             bob - nofile junk\n\
             carol -\n\
             * -\n\
             dave hard nofile 65536x\n",
        );
        let d: Vec<_> = p
            .entries
            .iter()
            .map(|e| (e.line, e.domain.clone(), e.soft, e.hard, e.value))
            .collect();
        assert_eq!(
            d,
            vec![
                (
                    1,
                    Domain::User("alice".into()),
                    false,
                    true,
                    Nofile::Value(4096)
                ),
                (
                    2,
                    Domain::Group("web".into()),
                    true,
                    false,
                    Nofile::Unlimited
                ),
                (
                    3,
                    Domain::UidRange("1000:".into()),
                    true,
                    true,
                    Nofile::Value(8192)
                ),
                (
                    4,
                    Domain::GidRange("@:27".into()),
                    false,
                    true,
                    Nofile::Value(10)
                ),
                (
                    10,
                    Domain::User("dave".into()),
                    false,
                    true,
                    Nofile::Value(65536)
                ),
            ]
        );
        assert_eq!(p.no_limits, vec![(8, Domain::User("carol".into()))]);
    }

    #[test]
    fn a_later_file_lowering_the_same_domain_wins() {
        let files = [
            f(LIMITS_CONF, "* hard nofile 4096\nroot hard nofile 4096\n"),
            f(OURS, TUNE),
            f(
                "etc/security/limits.d/95-local.conf",
                "* - nofile 65536\nroot soft nofile 1024\n",
            ),
        ];
        let w = warn(&files);
        assert_eq!(w.len(), 2, "{w:#?}");
        // Earlier limits.conf lines lose to tune's later ones; the later file's lines win.
        assert!(
            w.iter().any(|m| m.starts_with(
                "nofile (soft) for root: /etc/security/limits.d/95-local.conf:2 sets 1024; it is read after \
                 /etc/security/limits.d/90-tune.conf"
            ) && m.contains("get 1024 not 1048576")),
            "{w:#?}"
        );
        assert!(
            w.iter().any(|m| m.starts_with(
                "nofile (soft and hard) for every user not named elsewhere (*): \
                 /etc/security/limits.d/95-local.conf:1 sets 65536"
            )),
            "{w:#?}"
        );
    }

    #[test]
    fn an_earlier_file_is_overridden_and_a_higher_later_value_is_fine() {
        let files = [
            f(LIMITS_CONF, "* - nofile 1024\nroot - nofile 1024\n"),
            f("etc/security/limits.d/20-a.conf", "* soft nofile 2048\n"),
            f(OURS, TUNE),
            f(
                "etc/security/limits.d/99-z.conf",
                "* hard nofile unlimited\nroot - nofile 2000000\n",
            ),
        ];
        assert!(warn(&files).is_empty(), "{:#?}", warn(&files));
    }

    #[test]
    fn a_user_or_group_line_beats_the_wildcard_in_any_file() {
        let files = [
            // Read before tune's file, and still wins for alice: user lines outrank `*`.
            f(LIMITS_CONF, "alice hard nofile 4096\n"),
            f(OURS, TUNE),
            f(
                "etc/security/limits.d/95-web.conf",
                "@www-data soft nofile 8192\n@www-data hard nofile 2000000\n1000:1999 hard nofile 9000\n",
            ),
        ];
        let w = warn(&files);
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(
            w[2].starts_with("nofile (hard) for uids 1000:1999: /etc/security/limits.d/95-web.conf:3 sets 9000; a uid range line outranks"),
            "{w:#?}"
        );
        assert!(
            w[0].starts_with("nofile (hard) for user alice: /etc/security/limits.conf:1 sets 4096; a user line outranks tune's `*` line"),
            "{w:#?}"
        );
        assert!(
            w[1].starts_with("nofile (soft) for members of @www-data: /etc/security/limits.d/95-web.conf:1 sets 8192; a group line"),
            "{w:#?}"
        );
        // Group and wildcard lines never reach root (Debian), so root keeps tune's value.
        assert!(!w.iter().any(|m| m.contains("for root")), "{w:#?}");
    }

    #[test]
    fn a_later_wildcard_does_not_beat_a_user_line_and_root_ranges_count() {
        let files = [
            f(OURS, TUNE),
            // A later `*` is reported once (for `*`), not again for alice, whose own line is higher.
            f(
                "etc/security/limits.d/95-x.conf",
                "alice - nofile 2000000\n* hard nofile 50000\n:0 soft nofile 777\n",
            ),
        ];
        let w = warn(&files);
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(
            w.iter().any(|m| m.starts_with(
                "nofile (soft) for root: /etc/security/limits.d/95-x.conf:3 sets 777"
            )),
            "{w:#?}"
        );
        assert!(
            w.iter()
                .any(|m| m.starts_with("nofile (hard) for every user not named elsewhere (*)")),
            "{w:#?}"
        );
    }

    #[test]
    fn a_no_limits_line_is_named() {
        let files = [f(LIMITS_CONF, "root -\n"), f(OURS, TUNE)];
        let w = warn(&files);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with("nofile for root: /etc/security/limits.conf:1 says `-` (no limits)"),
            "{w:#?}"
        );
    }

    #[test]
    fn nothing_to_say_without_tunes_file() {
        let files = [f(LIMITS_CONF, "* hard nofile 1024\n")];
        assert!(warn(&files).is_empty());
    }
}
