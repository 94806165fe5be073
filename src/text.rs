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

/// `text` wrapped between words to `width` columns: the first line starts with `first`, the
/// others with `rest`. A word longer than a line stands alone on its line, whole.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
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

/// Narrowest room a value column leaves for its text before [`fit`] gives the column up.
const MIN_VALUE: usize = 24;

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
}
