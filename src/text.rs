//! Text for people, on every screen (check, apply, rollback, verify, load, explain, profiles, errors): the width to fit, wrapping that never breaks a token, and the one way an error starts.
//!
//! The rules are check's first screen's: wrap at the terminal's width (80 when stdout is not a
//! terminal and COLUMNS is unset), break lines only between words, indent what continues a
//! line. Commands to copy are one token run, so callers put them on lines of their own.

/// Width when stdout is not a terminal and COLUMNS is unset (a file, a pipe, CI logs).
pub const NOT_A_TERMINAL: usize = 80;
/// Narrowest width wrapped to: below it a knob name alone would not fit.
pub const MIN_WIDTH: usize = 40;

/// How every error tune prints starts, its own and clap's alike.
pub const ERROR_PREFIX: &str = "tune: error: ";

/// The width to fit: the terminal on stdout, else COLUMNS, else [`NOT_A_TERMINAL`].
pub fn width() -> usize {
    width_of(std::io::stdout())
}

/// The width errors fit: as [`width`], for the terminal on stderr, where errors go.
pub fn error_width() -> usize {
    width_of(std::io::stderr())
}

/// An error as tune prints it, every one through here (its own and clap's): [`ERROR_PREFIX`],
/// then the message, each line wider than `width` wrapped between words as [`fit`] does (never
/// breaking a token: a path or a command stays whole), ending in a newline.
pub fn error(message: &str, width: usize) -> String {
    let mut text = fit(&format!("{ERROR_PREFIX}{message}"), width);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn width_of(stream: impl std::os::fd::AsFd) -> usize {
    terminal_size::terminal_size_of(stream)
        .map(|(w, _)| usize::from(w.0))
        .or_else(|| std::env::var("COLUMNS").ok()?.trim().parse().ok())
        .filter(|w| *w > 0)
        .unwrap_or(NOT_A_TERMINAL)
        .max(MIN_WIDTH)
}

/// Joins the words of a phrase that must stay on one line (`EstabResets +0`, `p50 3.12 ms`):
/// [`wrap`] breaks lines only at ordinary spaces, and prints this one as a space.
pub const KEEP: char = '\u{a0}';

/// `phrase` with its spaces made [`KEEP`]s, so that no line break falls inside it.
pub fn keep(phrase: &str) -> String {
    phrase.replace(' ', &KEEP.to_string())
}

/// Units that stay on the line of the number before them (`8.3 KB`, `0.10 s`), as a
/// typesetter's no-break space keeps them.
const UNITS: &[&str] = &[
    "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "s", "ms", "µs", "%", "pages",
    "B/conn",
];

/// The words of `text` as [`wrap`] places them: split at whitespace other than [`KEEP`], a
/// unit joined to the number before it, a range's ends joined by its `..`, a `+N` joined to
/// the word before it.
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| c.is_whitespace() && c != KEEP)
        .filter(|w| !w.is_empty())
    {
        let after_number = out
            .last()
            .is_some_and(|p| p.ends_with(|c: char| c.is_ascii_digit()));
        let unit = after_number && UNITS.contains(&w.trim_end_matches([',', ';', ')']));
        // A range (`127.0.0.2 .. 127.0.0.3`) reads as one thing, and a change stays with what
        // changed (`ListenDrops +2`).
        let range = w == ".." || out.last().is_some_and(|p| p.ends_with(".."));
        let delta = w.starts_with('+') && w[1..].starts_with(|c: char| c.is_ascii_digit());
        match out.last_mut() {
            Some(prev) if unit || range || delta => {
                prev.push(KEEP);
                prev.push_str(w);
            }
            _ => out.push(w.to_string()),
        }
    }
    out
}

/// `text` wrapped between words to `width` columns: the first line starts with `first`, the
/// others with `rest`. A word longer than a line stands alone on its line, whole; a unit
/// stays with its number and a [`keep`] phrase stays whole (split between its words only
/// when it is longer than a line).
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    let words = words(text);
    let pieces = words.iter().flat_map(|w| {
        let fits = rest.chars().count() + w.chars().count() <= width;
        let parts: Vec<&str> = if fits {
            vec![w.as_str()]
        } else {
            w.split(KEEP).collect()
        };
        parts
    });
    for word in pieces {
        let len = line.chars().count();
        if !empty && len + 1 + word.chars().count() > width {
            out.push(std::mem::replace(&mut line, rest.to_string()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push(line);
    for l in &mut out {
        *l = l.replace(KEEP, " ");
    }
    out
}

/// Every line of `text` that is wider than `width` wrapped between words, its continuation
/// lines indented two more than the line itself; lines that fit are left exactly as they are.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if body.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        // A label column (`mode                   loopback`) stays as it is, and what follows
        // it wraps two columns in from its start; otherwise continuation lines are indented two more.
        let (head, tail, rest) = match value_column(body).filter(|c| *c + MIN_VALUE <= width) {
            Some(col) => {
                let split = body.char_indices().nth(col).map_or(body.len(), |(i, _)| i);
                let (head, tail) = body.split_at(split);
                (head.to_string(), tail, " ".repeat(col + 2))
            }
            None => {
                let indent: String = body.chars().take_while(|c| *c == ' ').collect();
                let rest = format!("{indent}  ");
                (indent, body.trim_start(), rest)
            }
        };
        out.push_str(&wrap(tail, width, &head, &rest).join("\n"));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Rows of `label value` laid out at `width`: after `indent`, the labels in a column as wide as
/// the widest, and each value wrapped between words inside its own column, so its continuation
/// lines start under its first word. Where the value column would be narrower than
/// [`MIN_VALUE`], continuation lines are indented two past `indent` instead.
pub fn columns(rows: &[(&str, &str)], indent: &str, width: usize) -> Vec<String> {
    let label_width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .flat_map(|(label, value)| row_lines(label, value, indent, label_width, width))
        .collect()
}

/// Narrowest room a value column leaves for its text before [`fit`] gives the column up.
const MIN_VALUE: usize = 24;

/// A report laid out for people (verify's, load's): label/value rows whose values share one
/// column, paragraphs and small tables, in the order added, rendered at a width. Nothing is
/// wrapped after the fact: each part knows where its lines may break.
#[derive(Debug, Default)]
pub struct Sheet {
    parts: Vec<Part>,
    /// Labels are padded to at least this (so reports keep their value column from run to run).
    label_width: usize,
}

#[derive(Debug)]
enum Part {
    /// A label and its value, wrapped inside the value column.
    Row(String, String),
    /// Prose: the first line starts with `first`, the others with `rest`.
    Para {
        text: String,
        first: String,
        rest: String,
    },
    /// Cells in aligned columns (numbers right-aligned), after `indent`.
    Table {
        indent: String,
        rows: Vec<Vec<String>>,
        right: Vec<bool>,
    },
}

impl Sheet {
    /// A sheet whose labels are padded to `label_width` at least.
    pub fn new(label_width: usize) -> Sheet {
        Sheet {
            parts: Vec::new(),
            label_width,
        }
    }

    /// A `label value` row; an empty label continues the row above.
    pub fn row(&mut self, label: &str, value: impl Into<String>) {
        self.parts.push(Part::Row(label.to_string(), value.into()));
    }

    /// A row whose value is a list: each item stays whole on a line (`EstabResets +0`), the
    /// items separated by `, `; `empty` when there is none.
    pub fn list(&mut self, label: &str, items: &[String], empty: &str) {
        let value = if items.is_empty() {
            empty.to_string()
        } else {
            items.iter().map(|i| keep(i)).collect::<Vec<_>>().join(", ")
        };
        self.row(label, value);
    }

    /// Prose wrapped with `first` before its first line and `rest` before the others.
    pub fn para(&mut self, text: impl Into<String>, first: &str, rest: &str) {
        self.parts.push(Part::Para {
            text: text.into(),
            first: first.into(),
            rest: rest.into(),
        });
    }

    /// A table after `indent`: `right[i]` right-aligns column i (numbers).
    pub fn table(&mut self, indent: &str, rows: Vec<Vec<String>>, right: &[bool]) {
        if !rows.is_empty() {
            self.parts.push(Part::Table {
                indent: indent.into(),
                rows,
                right: right.to_vec(),
            });
        }
    }

    /// Every part at `width` columns, each line ending in a newline.
    pub fn render(&self, width: usize) -> String {
        let label_width = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Row(l, _) => Some(l.chars().count()),
                _ => None,
            })
            .fold(self.label_width, usize::max);
        let mut out = String::new();
        for part in &self.parts {
            let lines = match part {
                Part::Row(label, value) => row_lines(label, value, "", label_width, width),
                Part::Para { text, first, rest } => wrap(text, width, first, rest),
                Part::Table {
                    indent,
                    rows,
                    right,
                } => table_lines(indent, rows, right),
            };
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

/// One `label value` row: the label padded to `label_width` after `indent`, the value wrapped
/// inside its column (continuation lines under its first word), or two past `indent` where
/// that column would be narrower than [`MIN_VALUE`].
fn row_lines(
    label: &str,
    value: &str,
    indent: &str,
    label_width: usize,
    width: usize,
) -> Vec<String> {
    let column = indent.chars().count() + label_width + 1;
    let rest = if column + MIN_VALUE <= width {
        " ".repeat(column)
    } else {
        format!("{indent}  ")
    };
    let first = format!("{indent}{label:<label_width$} ");
    let mut lines = wrap(value, width, &first, &rest);
    if let Some(l) = lines.last_mut() {
        l.truncate(l.trim_end().len());
    }
    lines
}

/// Cells in columns as wide as their widest cell, two spaces apart.
fn table_lines(indent: &str, rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| match right.get(i) {
                    Some(true) => format!("{c:>w$}", w = widths[i]),
                    _ => format!("{c:<w$}", w = widths[i]),
                })
                .collect();
            let line = format!("{indent}{}", cells.join("  "));
            line.trim_end().to_string()
        })
        .collect()
}

/// Where the value of a `label   value` line starts: after the first run of two or more spaces
/// that follows text (the label's padding), in characters.
fn value_column(line: &str) -> Option<usize> {
    let chars: Vec<char> = line.chars().collect();
    let start = chars.iter().position(|c| *c != ' ')?;
    let mut i = start;
    while i + 1 < chars.len() {
        if chars[i] == ' ' && chars[i + 1] == ' ' {
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            return (j < chars.len()).then_some(j);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_never_breaks_a_word() {
        let w = wrap(
            "persist: /etc/sysctl.d/90-tune.conf: net.netfilter.nf_conntrack_max = 1100000",
            40,
            "  ",
            "    ",
        );
        assert_eq!(
            w,
            vec![
                "  persist: /etc/sysctl.d/90-tune.conf:",
                "    net.netfilter.nf_conntrack_max =",
                "    1100000"
            ]
        );
        let long = "a".repeat(50);
        assert_eq!(wrap(&long, 40, "", ""), vec![long.clone()]);
    }

    #[test]
    fn an_error_is_wrapped_with_its_prefix_and_keeps_paths_whole() {
        let e = error(
            "--server-cgroup /x: not a memory cgroup directory: expected /sys/fs/cgroup/memory/PATH (cgroup v1)",
            60,
        );
        assert!(e.lines().all(|l| l.chars().count() <= 60), "{e}");
        assert_eq!(
            e,
            "tune: error: --server-cgroup /x: not a memory cgroup\n  directory: expected /sys/fs/cgroup/memory/PATH (cgroup v1)\n"
        );
        assert_eq!(error("short", 80), "tune: error: short\n");
        // clap's own lines (usage, tips) are kept as they are when they fit.
        assert_eq!(
            error("a\n\nUsage: tune\n", 80),
            "tune: error: a\n\nUsage: tune\n"
        );
    }

    #[test]
    fn columns_wrap_each_value_inside_its_column() {
        let rows = [
            ("what:", "Ceiling on a listener's accept queue"),
            (
                "when short:",
                "the queue overflows: ListenOverflows and ListenDrops rise",
            ),
        ];
        assert_eq!(
            columns(&rows, "  ", 40),
            vec![
                "  what:       Ceiling on a listener's",
                "              accept queue",
                "  when short: the queue overflows:",
                "              ListenOverflows and",
                "              ListenDrops rise",
            ]
        );
        // Too narrow for the column: continuation lines are indented two instead.
        assert_eq!(
            columns(&rows[..1], "  ", 30)[1],
            "    listener's accept queue"
        );
    }

    #[test]
    fn fit_wraps_only_long_lines_and_keeps_their_indent() {
        let text = "short\n    why: which cannot be raised here because the kernel checks it\nend";
        assert_eq!(
            fit(text, 30),
            "short\n    why: which cannot be\n      raised here because the\n      kernel checks it\nend"
        );
        assert_eq!(fit("a b\n", 30), "a b\n");
        // A label column keeps its padding; the value wraps two in from its start.
        assert_eq!(
            fit("teardown    20,000 closed in 0.26 s; EstabResets +0", 40),
            "teardown    20,000 closed in 0.26 s;\n              EstabResets +0"
        );
    }

    #[test]
    fn a_unit_stays_with_its_number_and_a_kept_phrase_stays_whole() {
        // Without the rule the line would end in "8.3" and the next start with "KB".
        assert_eq!(
            wrap("bound by memory at ~8.3 KB per pair", 21, "", ""),
            vec!["bound by memory at", "~8.3 KB per pair"]
        );
        assert_eq!(
            wrap("sources: 127.0.0.2 .. 127.0.0.3", 24, "", ""),
            vec!["sources:", "127.0.0.2 .. 127.0.0.3"]
        );
        let counters = format!(
            "{}, {}",
            keep("ListenDrops +0"),
            keep("TCPAbortOnMemory +0")
        );
        assert_eq!(
            wrap(&counters, 30, "", ""),
            vec!["ListenDrops +0,", "TCPAbortOnMemory +0"]
        );
        // Longer than a line: split between its own words, never inside one.
        assert_eq!(wrap(&keep("a bb ccc"), 4, "", ""), vec!["a bb", "ccc"]);
        assert_eq!(
            wrap("ListenOverflows +2, ListenDrops +2", 28, "", ""),
            vec!["ListenOverflows +2,", "ListenDrops +2"]
        );
        // "2 server" is not a number and its unit.
        assert_eq!(wrap("at 2 server", 4, "", ""), vec!["at 2", "server"]);
    }

    #[test]
    fn a_sheet_lines_rows_up_in_one_column_with_tables_and_prose_between() {
        let mut s = Sheet::new(8);
        s.para("VERDICT: held 2,000 websocket connections here", "", "  ");
        s.row("mode", "loopback");
        s.list(
            "counters",
            &["EstabResets +0".into(), "ListenOverflows +12".into()],
            "none",
        );
        s.table(
            "  ",
            vec![
                vec!["TCP".into(), "+3,887".into()],
                vec!["sock_inode_cache".into(), "+12".into()],
            ],
            &[false, true],
        );
        s.row("long label", "a value");
        s.list("errors", &[], "none");
        assert_eq!(
            s.render(40),
            "VERDICT: held 2,000 websocket\n  connections here\n\
             mode       loopback\n\
             counters   EstabResets +0,\n           ListenOverflows +12\n\
             \x20 TCP               +3,887\n\
             \x20 sock_inode_cache     +12\n\
             long label a value\n\
             errors     none\n"
        );
    }
}
