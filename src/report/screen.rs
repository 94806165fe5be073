//! The first screen of `tune check` for people: the verdict line, the fixes ranked by gain as whole commands, then a compact knob table that fits the terminal.
//!
//! Nothing is ever broken inside a token: prose wraps between words, table cells wrap
//! between words with each column at least as wide as its longest word (knob names,
//! numbers), and commands stand whole on lines of their own, below the table's width
//! budget. Numbers carry thousands separators here; commands keep raw numbers to copy.

use comfy_table::{
    presets, Cell, Color, ColumnConstraint, ContentArrangement, Table, TableComponent, Width,
};

use super::verdict::{must_precede, Verdict};
use super::{value_text, CheckReport, Status};
use crate::knobs::{KnobId, Role};
use crate::units::group;
use crate::values::{Input, Suggest};

/// Width used when the output is not a terminal and COLUMNS is unset (a file, a pipe, CI
/// logs): readable in any viewer, and wide enough for the --verbose table's words.
pub const UNBOUNDED: usize = 100;

/// Renders the first screen: verdict, fixes, compact table, one summary line.
pub fn render(r: &CheckReport, v: &Verdict, width: Option<usize>, color: bool) -> String {
    let w = width.unwrap_or(UNBOUNDED).max(40);
    let mut out = Vec::new();
    let mut head = super::verdict::headline(v);
    if let Some(m) = &r.measured_cost {
        head.push_str(&format!(
            " ({} per connection, {})",
            crate::units::bytes(m.bytes_per_connection),
            m.source
        ));
    }
    out.extend(wrap(&head, w, "", "  "));
    for line in r.service.iter().flatten() {
        out.extend(wrap(line, w, "  ", "    "));
    }
    out.extend(capacity_lines(v, w));
    // What the figure assumes, under the arithmetic it qualifies.
    let file_max = crate::knobs::KnobId::FileMax.name();
    if let Some(c) = r
        .credentials
        .as_ref()
        .filter(|_| v.bound_by == file_max || v.next.iter().any(|n| n.limit == file_max))
    {
        out.extend(wrap(c, w, "  ", "    "));
    }
    if r.measured_cost.is_none() {
        out.extend(wrap(&assumes_no_user_cost(), w, "  ", "    "));
    }
    for line in tls_lines(r) {
        out.extend(wrap(&line, w, "  ", "    "));
    }
    out.extend(fix_lines(r, v, w));
    out.extend(drift_lines(r, w));
    out.push(String::new());
    out.push(compact_table(r, w, color));
    out.extend(summary_lines(r, w));
    out.join("\n") + "\n"
}

/// Said under the verdict when no measured cost was given.
fn assumes_no_user_cost() -> String {
    format!(
        "assumes a near-zero user-space cost per connection (the kernel's socket alone); measure your server: tune load URL {} {} > cost.json, then tune check {} {}",
        Suggest::set(Input::ServerPid, "PID"),
        Suggest::set(Input::Format, "json"),
        Suggest::set(Input::Pid, "PID"),
        Suggest::set(Input::CostFrom, "cost.json"),
    )
}

/// Said under the verdict with `--tls` and no figure for what TLS adds per connection.
pub const NO_TLS_FIGURE: &str = "TLS: no figure for what TLS adds per connection, so this is sized as plain connections; measure it here";

/// How to measure what TLS adds per connection on this host, said when there is no figure.
pub fn how_to_measure_tls() -> String {
    format!(
        "tune serve {} {} {} > tls.json, then tune check {} {} (or give {})",
        Suggest::set(Input::Verify, 20000),
        Suggest::input(Input::Tls),
        Suggest::set(Input::Format, "json"),
        Suggest::input(Input::Tls),
        Suggest::set(Input::TlsFrom, "tls.json"),
        Suggest::set(Input::TlsCost, "SIZE"),
    )
}

/// With `--tls`: which TLS cost the capacity used and where it came from, and whether the
/// kernel offers kTLS.
fn tls_lines(r: &CheckReport) -> Vec<String> {
    let Some(t) = &r.tls else {
        return Vec::new();
    };
    let mut out = vec![match &t.cost {
        Some(c) => {
            let b = crate::units::bytes;
            let per = match r.capacity.role {
                Role::Server => b(c.bytes_per_connection),
                Role::Client => format!("{} (the client end)", b(c.client_bytes())),
                Role::Loopback => format!(
                    "{} ({} server end + {} client end, both on this host)",
                    b(c.bytes_per_connection + c.client_bytes()),
                    b(c.bytes_per_connection),
                    b(c.client_bytes())
                ),
            };
            format!("TLS: + {per} per connection, {}", c.source)
        }
        None => format!("{NO_TLS_FIGURE}: {}", how_to_measure_tls()),
    }];
    if let Some(k) = &r.ktls {
        let state = match k.available {
            Some(true) => "available",
            Some(false) => "not available",
            None => "unknown",
        };
        out.push(format!("kTLS: {state} ({})", k.evidence));
    }
    out
}

/// The lines under the verdict: per process, per host, what limits next, processes needed.
fn capacity_lines(v: &Verdict, w: usize) -> Vec<String> {
    let n = |x: Option<u64>| x.map_or("unknown".to_string(), group);
    let mut text = vec![format!(
        "per process {} sockets ({}); per host {} connections ({})",
        n(v.per_process),
        v.per_process_limit,
        n(v.per_host),
        v.per_host_limit
    )];
    if !v.next.is_empty() {
        let next: Vec<String> = v
            .next
            .iter()
            .map(|l| format!("{} at {}", l.limit, group(l.connections)))
            .collect();
        text.push(format!("next limits: {}", next.join(", ")));
    }
    let mut needs = Vec::new();
    if let Some(p) = v.processes_needed {
        needs.push(format!(
            "{} process{}",
            group(p),
            if p == 1 { "" } else { "es" }
        ));
    }
    if let Some(a) = v.source_addresses_needed {
        needs.push(format!(
            "{} source address{}",
            group(a),
            if a == 1 { "" } else { "es" }
        ));
    }
    if !needs.is_empty() {
        let whose = match v.target {
            Some(t) => format!("for {}", group(t)),
            None => "for that".to_string(),
        };
        text.push(format!("needs {} {whose}", needs.join(" and ")));
    }
    text.iter().flat_map(|t| wrap(t, w, "  ", "    ")).collect()
}

/// The fixes that gain connections, largest gain first and each after what it needs, each
/// command whole on its own line, and under it why it cannot work from here when it cannot;
/// then the knobs that are short of the profile but cap nothing, by name.
fn fix_lines(r: &CheckReport, v: &Verdict, w: usize) -> Vec<String> {
    let status = |knob: &str| {
        r.knobs
            .iter()
            .find(|row| row.knob == knob)
            .map(|row| row.status)
    };
    let (main, rest): (Vec<_>, Vec<_>) = v
        .fixes
        .iter()
        .partition(|f| f.gain > 0 || status(&f.knob) == Some(Status::Fail));
    let mut out = Vec::new();
    if !main.is_empty() {
        out.push(String::new());
        out.push("Fixes, in the order they must run (largest gain first):".to_string());
    }
    for (i, f) in main.iter().enumerate() {
        // The first later fix that needs this one, with the kernel's reason.
        let enables = main.iter().enumerate().skip(i + 1).find_map(|(j, later)| {
            let (me, then) = (KnobId::from_name(&f.knob)?, KnobId::from_name(&later.knob)?);
            must_precede(me, then).map(|why| (j + 1, later.knob.as_str(), why))
        });
        let head = match (f.gain, f.holds_after, enables) {
            (_, _, Some((n, then, why))) => {
                format!("{}: first, for {n}. {then} ({why})", f.knob)
            }
            (0, _, None) => format!("{}: needed with the fixes above", f.knob),
            (g, Some(after), None) => {
                format!("{}: +{} (holds {})", f.knob, group(g), group(after))
            }
            (g, None, None) => format!("{}: +{}", f.knob, group(g)),
        };
        out.extend(wrap(&head, w, &format!("  {}. ", i + 1), "     "));
        out.extend(command_lines(&f.action, w, "     "));
        if let Some(why) = &f.blocked {
            out.extend(wrap(
                &format!("cannot change here: {why}"),
                w,
                "     ",
                "       ",
            ));
        }
        if let Some(p) = &f.persist {
            out.extend(wrap(&format!("persist: {p}"), w, "     ", "       "));
        }
    }
    if !rest.is_empty() {
        let names: Vec<&str> = rest.iter().map(|f| f.knob.as_str()).collect();
        out.push(String::new());
        out.extend(wrap(
            &format!(
                "Short of the profile but capping nothing at {} (warn): {}. tune apply raises them with the rest; {} lists their commands.",
                v.target.map_or("the target".into(), group),
                names.join(", "),
                Suggest::input(Input::Verbose)
            ),
            w,
            "",
            "  ",
        ));
    }
    out
}

/// What became of the last apply, and boot files that override tune's: only when there is
/// something to say.
fn drift_lines(r: &CheckReport, w: usize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = r
        .drift
        .as_ref()
        .filter(|d| d.problems.is_empty() && !d.values.is_empty())
    {
        out.push(String::new());
        out.extend(wrap(
            &format!(
                "Last apply (#{}, profile {}): all {} values still live and kept at boot.",
                d.apply_id,
                d.profile,
                d.values.len()
            ),
            w,
            "",
            "  ",
        ));
    }
    if let Some(d) = r.drift.as_ref().filter(|d| !d.problems.is_empty()) {
        out.push(String::new());
        out.push(format!(
            "Drift since the last apply (#{}, profile {}):",
            d.apply_id, d.profile
        ));
        for p in &d.problems {
            out.extend(wrap(p, w, "  ", "    "));
        }
    }
    if let Some(line) = r.drift.as_ref().and_then(|d| d.other_netns.as_ref()) {
        out.push(String::new());
        out.push("Applied in another network namespace (not this one's drift):".to_string());
        out.extend(wrap(line, w, "  ", "    "));
    }
    if !r.boot_warnings.is_empty() {
        out.push(String::new());
        out.push("Boot configuration overrides tune's own:".to_string());
        for b in &r.boot_warnings {
            out.extend(wrap(b, w, "  ", "    "));
        }
    }
    out
}

/// A command, whole on one line; words after it in parentheses wrap below it.
pub(super) fn command_lines(action: &str, w: usize, indent: &str) -> Vec<String> {
    match action.split_once(" (") {
        Some((cmd, rest)) if rest.ends_with(')') => {
            let mut out = vec![format!("{indent}{cmd}")];
            out.extend(wrap(
                &format!("({rest}"),
                w,
                &format!("{indent}  "),
                &format!("{indent}  "),
            ));
            out
        }
        _ => vec![format!("{indent}{action}")],
    }
}

/// Knobs with a requirement or a reading that matters: name, current, required, status.
fn compact_table(r: &CheckReport, w: usize, color: bool) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.force_no_tty();
    if color {
        t.enforce_styling();
    }
    if r.knobs.iter().all(|row| row.required.is_none()) {
        return limits_table(r, w, color);
    }
    t.set_header(vec!["knob", "current", "required", "status"]);
    for row in r.knobs.iter().filter(|row| row.required.is_some()) {
        let current = match (&row.current, row.status) {
            (None, Status::Absent) => "absent".to_string(),
            (None, _) => "unreadable".to_string(),
            (Some(v), _) => short_value(v, row.unit),
        };
        t.add_row(vec![
            Cell::new(row.knob),
            Cell::new(current),
            Cell::new(
                row.required
                    .as_ref()
                    .map_or("-".into(), |v| short_value(v, row.unit)),
            ),
            status_cell(row.status, color),
        ]);
    }
    fit(&mut t, w);
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Columns of a borderless table are this many spaces apart.
const GAP: u16 = 2;

/// Without a profile: the live value of every limit a profile could require.
fn limits_table(r: &CheckReport, w: usize, color: bool) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.force_no_tty();
    if color {
        t.enforce_styling();
    }
    t.set_header(vec!["knob", "scope", "current"]);
    for row in &r.knobs {
        let limit =
            crate::knobs::find(row.knob).is_some_and(|k| k.compare != crate::knobs::Compare::Info);
        if let (true, Some(v)) = (limit, &row.current) {
            t.add_row(vec![
                row.knob.to_string(),
                row.scope.as_str().to_string(),
                short_value(v, row.unit),
            ]);
        }
    }
    fit(&mut t, w);
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Makes `t` fit in `w` columns without splitting a word: no borders, columns [`GAP`] apart,
/// each at least as wide as its longest word. When even that does not fit, the table is as
/// narrow as it can be and overflows rather than break a word.
pub fn fit(t: &mut Table, w: usize) {
    for c in [
        TableComponent::LeftBorder,
        TableComponent::RightBorder,
        TableComponent::VerticalLines,
    ] {
        t.remove_style(c);
    }
    let longest = longest_words(t);
    let cols = longest.len();
    let narrowest: usize =
        longest.iter().map(|n| *n as usize).sum::<usize>() + GAP as usize * cols.saturating_sub(1);
    for (i, n) in longest.into_iter().enumerate() {
        if let Some(c) = t.column_mut(i) {
            let pad = if i + 1 == cols { 0 } else { GAP };
            c.set_padding((0, pad));
            // The boundary counts the padding too.
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(n + pad)));
        }
    }
    t.set_width(w.max(narrowest).min(u16::MAX as usize) as u16);
    t.set_content_arrangement(ContentArrangement::Dynamic);
}

/// A value for the compact table: bytes as "25.3 GB", counts with thousands separators.
fn short_value(v: &crate::knobs::Value, unit: &str) -> String {
    match v {
        crate::knobs::Value::Int(n) if unit == "bytes" && *n != crate::knobs::UNLIMITED => {
            crate::units::bytes(*n)
        }
        v => value_text(Some(v), unit),
    }
}

/// A status as a table cell, coloured by how bad it is (the compact table and the verbose one).
pub(super) fn status_cell(s: Status, color: bool) -> Cell {
    let c = Cell::new(s.as_str());
    if !color {
        return c;
    }
    match s {
        Status::Ok => c.fg(Color::Green),
        Status::Warn => c.fg(Color::Yellow),
        Status::Fail => c.fg(Color::Red),
        Status::Absent | Status::Info => c.fg(Color::DarkGrey),
    }
}

/// The counts, what fail and warn mean, and where the rest is.
fn summary_lines(r: &CheckReport, w: usize) -> Vec<String> {
    let s = &r.summary;
    if r.verdict.as_ref().is_some_and(|v| v.target.is_none()) {
        // The shipped profiles' names from the one list of them, so a new one is never left out.
        let shipped: Vec<&str> = crate::profile::SHIPPED.iter().map(|(n, _)| *n).collect();
        let text = format!(
            "No profile, so nothing is required: tune check {} ({}) \
             or {} compares the host with a target. {} shows the capacity \
             arithmetic, usage and counters.",
            Suggest::set(Input::Profile, "NAME"),
            shipped.join(", "),
            Suggest::set(Input::Target, "N"),
            Suggest::input(Input::Verbose)
        );
        let mut out = vec![String::new()];
        out.extend(wrap(&text, w, "", ""));
        return out;
    }
    let text = format!(
        "{} ok, {} fail (caps the target), {} warn (short, caps nothing at the target){} -> exit {}. \
         tune check {} shows every knob, the why of each value, the capacity arithmetic and the counters.",
        s.ok,
        s.fail,
        s.warn,
        if r.strict { ", strict: warnings fail" } else { "" },
        s.exit_code,
        Suggest::input(Input::Verbose)
    );
    let mut out = vec![String::new()];
    out.extend(wrap(&text, w, "", ""));
    out
}

/// Makes a bordered (markdown) table fit in `w` columns without splitting a word, as [`fit`].
pub fn fit_bordered(t: &mut Table, w: usize) {
    let longest = longest_words(t);
    let cols = longest.len();
    // Each column has one space of padding on both sides and one border character after it.
    let narrowest: usize = longest.iter().map(|n| *n as usize + 3).sum::<usize>() + 1;
    for (i, n) in longest.into_iter().enumerate() {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(n + 2)));
        }
    }
    let _ = cols;
    t.set_width(w.max(narrowest).min(u16::MAX as usize) as u16);
    t.set_content_arrangement(ContentArrangement::Dynamic);
}

/// The longest word of each column, header included.
fn longest_words(t: &Table) -> Vec<u16> {
    t.column_iter()
        .enumerate()
        .map(|(i, _)| {
            let header = t
                .header()
                .and_then(|h| h.cell_iter().nth(i))
                .map(|c| c.content())
                .unwrap_or_default();
            t.row_iter()
                .filter_map(|r| r.cell_iter().nth(i).map(|c| c.content()))
                .chain(std::iter::once(header))
                .flat_map(|c| {
                    c.split_whitespace()
                        .map(|s| s.chars().count())
                        .collect::<Vec<_>>()
                })
                .max()
                .unwrap_or(1) as u16
        })
        .collect()
}

/// Re-wraps every line of `text` longer than `w` between words, continuing it two columns
/// deeper than it starts.
pub fn reflow(text: &str, w: usize) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if body.chars().count() <= w {
            out.push_str(line);
            continue;
        }
        let indent: String = body.chars().take_while(|c| *c == ' ').collect();
        out.push_str(&wrap(body, w, &indent, &format!("{indent}  ")).join("\n"));
        out.push_str(nl);
    }
    out
}

pub use crate::text::wrap;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_stand_whole_and_their_words_wrap_below() {
        let l = command_lines(
            "prlimit --pid PID --nofile=1100011:1100011 (above the hard limit 20000: both must rise)",
            50,
            "     ",
        );
        assert_eq!(l[0], "     prlimit --pid PID --nofile=1100011:1100011");
        assert!(l[1..].iter().all(|x| x.chars().count() <= 50), "{l:?}");
    }

    #[test]
    fn a_table_fits_without_splitting_words() {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.force_no_tty();
        t.set_header(vec!["knob", "current", "required", "status"]);
        t.add_row(vec![
            "net.netfilter.nf_conntrack_buckets",
            "287,898 383,867 575,796",
            "825,000 1,100,000 1,650,000",
            "fail",
        ]);
        for (width, fits) in [(70, true), (40, false)] {
            fit(&mut t, width);
            let text = t.to_string();
            if fits {
                for l in text.lines() {
                    assert!(l.trim_end().chars().count() <= width, "{text}");
                }
            }
            for token in ["net.netfilter.nf_conntrack_buckets", "1,650,000", "383,867"] {
                assert!(text.contains(token), "{width}: {token} broken:\n{text}");
            }
        }
    }
}
