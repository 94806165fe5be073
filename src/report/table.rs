//! The table form of the check report for people: one comfy-table row per knob, then notes, capacity, usage and counters.

use comfy_table::{presets, Cell, Table};

use super::{value_text, CheckReport, Status};
use crate::knobs::KnobId;
use crate::units::group;

/// Renders the report: each section in the order people read it. `color` is decided by the
/// caller (a terminal, and NO_COLOR unset); `width` is the terminal's (`None`: no limit). The
/// verdict comes first, as on the first screen; the table's columns never split a word, and
/// prose longer than the width wraps between words.
pub fn render(r: &CheckReport, color: bool, width: Option<usize>) -> String {
    let sections: [fn(&CheckReport, bool) -> String; 5] =
        [header, notes, capacity, usage_and_counters, result];
    let w = width.unwrap_or(super::screen::UNBOUNDED);
    let mut out = String::new();
    if let Some(v) = &r.verdict {
        out.push_str(&super::screen::reflow(&super::verdict::headline(v), w));
        out.push('\n');
    }
    out.push_str(&super::screen::reflow(&header(r, color), w));
    out.push_str(&knob_table(r, color, w));
    for section in &sections[1..] {
        out.push_str(&super::screen::reflow(&section(r, color), w));
    }
    out
}

/// What was checked: profile, target, root, kernel, whose RLIMIT_NOFILE.
fn header(r: &CheckReport, _color: bool) -> String {
    let p = &r.profile;
    format!(
        "tune check: profile {} ({}), target {} connections, role {}\nroot {}, kernel {}, RLIMIT_NOFILE of {}\n\n",
        p.name,
        p.source,
        group(p.target),
        p.role,
        r.root,
        r.kernel.as_deref().unwrap_or("unknown"),
        r.pid.map_or(
            "tune itself (inherited from the shell)".to_string(),
            |p| format!("pid {p}")
        )
    )
}

/// One row per knob: current, boot and required values, status and fixes.
fn knob_table(r: &CheckReport, color: bool, width: usize) -> String {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    t.force_no_tty();
    if color {
        t.enforce_styling();
    }
    t.set_header(vec![
        "knob", "scope", "current", "boot", "required", "status",
    ]);
    // Where six bordered columns cannot fit without breaking a word (80 columns), the scope
    // goes under the knob's name and the borders go: five columns, two spaces apart.
    let narrow = bordered_width(r) > width;
    if narrow {
        t.load_preset(presets::NOTHING);
        t.set_header(vec![
            "knob (scope)",
            "current",
            "boot",
            "required",
            "status",
        ]);
    }
    for row in &r.knobs {
        let name = if narrow {
            vec![Cell::new(format!(
                "{}\n  ({})",
                row.knob,
                row.scope.as_str()
            ))]
        } else {
            vec![Cell::new(row.knob), Cell::new(row.scope.as_str())]
        };
        t.add_row(
            name.into_iter().chain([
                Cell::new(match (&row.current, row.status) {
                    (None, Status::Absent) => "absent".to_string(),
                    (None, _) => "unreadable".to_string(),
                    (Some(v), _) => value_text(Some(v), row.unit),
                }),
                Cell::new(
                    row.boot
                        .as_ref()
                        .map_or("-".to_string(), |b| value_text(Some(&b.value), row.unit)),
                ),
                Cell::new(value_text(row.required.as_ref(), row.unit)),
                super::screen::status_cell(row.status, color),
            ]),
        );
    }
    if narrow {
        super::screen::fit(&mut t, width);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        return format!("{}\n{}", lines.join("\n"), fixes(r, width));
    }
    super::screen::fit_bordered(&mut t, width);
    format!("{t}\n{}", fixes(r, width))
}

/// The narrowest the bordered six-column table can be without breaking a word.
fn bordered_width(r: &CheckReport) -> usize {
    let longest = |cells: Vec<String>| {
        cells
            .iter()
            .flat_map(|c| c.split_whitespace().map(|w| w.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let col = |head: &str, f: &dyn Fn(&super::Row) -> String| {
        longest(
            std::iter::once(head.to_string())
                .chain(r.knobs.iter().map(f))
                .collect(),
        )
    };
    let cols = [
        col("knob", &|row| row.knob.to_string()),
        col("scope", &|row| row.scope.as_str().to_string()),
        col("current", &|row| value_text(row.current.as_ref(), row.unit)),
        col("boot", &|row| {
            row.boot
                .as_ref()
                .map_or("-".into(), |b| value_text(Some(&b.value), row.unit))
        }),
        col("required", &|row| {
            value_text(row.required.as_ref(), row.unit)
        }),
        col("status", &|row| row.status.as_str().to_string()),
    ];
    // One space of padding on both sides of each column and a border after it, one before all.
    cols.iter().map(|n| n + 3).sum::<usize>() + 1
}

/// The fixes below the table in the order they must run, each command whole on its own line,
/// with what it waits for and why it cannot work from here.
fn fixes(r: &CheckReport, w: usize) -> String {
    use super::screen::{command_lines, wrap};
    let mut out: Vec<String> = Vec::new();
    let rows: Vec<&super::Row> = r
        .knobs
        .iter()
        .filter(|row| row.fix_runtime.is_some())
        .collect();
    let rows = super::verdict::in_dependency_order(rows, |row| KnobId::from_name(row.knob));
    for (i, row) in rows.iter().enumerate() {
        if out.is_empty() {
            out.push(String::new());
            out.push("Fixes, in the order they must run:".into());
        }
        out.push(format!("  {} ({}):", row.knob, row.status.as_str()));
        out.extend(command_lines(
            row.fix_runtime.as_deref().unwrap_or_default(),
            w,
            "    ",
        ));
        // The dependency: what this fix waits for, and why the kernel needs it first.
        for before in &rows[..i] {
            let (Some(a), Some(b)) = (KnobId::from_name(before.knob), KnobId::from_name(row.knob))
            else {
                continue;
            };
            if let Some(why) = super::verdict::must_precede(a, b) {
                out.extend(wrap(
                    &format!("after {}: {why}", before.knob),
                    w,
                    "    ",
                    "      ",
                ));
            }
        }
        if let Some(why) = r
            .verdict
            .as_ref()
            .and_then(|v| v.fixes.iter().find(|f| f.knob == row.knob))
            .and_then(|f| f.blocked.as_deref())
        {
            out.extend(wrap(
                &format!("cannot change here: {why}"),
                w,
                "    ",
                "      ",
            ));
        }
        if let Some(p) = &row.fix_persistent {
            out.extend(wrap(&format!("persist: {p}"), w, "    ", "      "));
        }
    }
    if out.is_empty() {
        return String::new();
    }
    out.join("\n") + "\n"
}

/// Notes on knobs that are not ok, boot overrides, drift since the last apply, and why each
/// failing value is required.
fn notes(r: &CheckReport, _color: bool) -> String {
    let mut out = String::new();
    let notes: Vec<String> = r
        .knobs
        .iter()
        .filter(|row| row.note.is_some() && row.status != Status::Ok)
        .map(|row| {
            format!(
                "  {} ({}): {}",
                row.knob,
                row.status.as_str(),
                row.note.as_deref().unwrap_or("")
            )
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    if !r.boot_warnings.is_empty() {
        out.push_str("\nBoot configuration overrides tune's own:\n");
        for w in &r.boot_warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    if let Some(d) = &r.drift {
        if d.problems.is_empty() && d.values.is_empty() {
            // Every value of the apply belongs to another network namespace: said below.
        } else if d.problems.is_empty() {
            out.push_str(&format!(
                "\nLast apply (#{}, profile {}): all {} values still live and kept at boot.\n",
                d.apply_id,
                d.profile,
                d.values.len()
            ));
        } else {
            out.push_str(&format!(
                "\nDrift since the last apply (#{}, profile {}):\n",
                d.apply_id, d.profile
            ));
            for p in &d.problems {
                out.push_str(&format!("  {p}\n"));
            }
        }
        if let Some(line) = &d.other_netns {
            out.push_str("\nApplied in another network namespace (not this one's drift):\n");
            out.push_str(&format!("  {line}\n"));
        }
    }
    let whys: Vec<String> = r
        .knobs
        .iter()
        .filter(|row| matches!(row.status, Status::Fail | Status::Warn))
        .filter_map(|row| row.why.as_ref().map(|w| format!("  {}: {w}", row.knob)))
        .collect();
    if !whys.is_empty() {
        out.push_str("\nWhy these values are required:\n");
        out.push_str(&whys.join("\n"));
        out.push('\n');
    }
    out
}

/// The capacity estimate: per process, per host, every host-wide limit, processes needed, verdict.
fn capacity(r: &CheckReport, _color: bool) -> String {
    let c = &r.capacity;
    let mut out = format!(
        "\nCapacity ({}, {} socket{} per connection, target {}):\n",
        c.role,
        c.sockets_per_connection,
        if c.sockets_per_connection == 1 {
            ""
        } else {
            "s"
        },
        group(c.target)
    );
    for line in c.summary() {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(ct) = &r.container {
        for line in crate::container::describe(ct) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("  host-wide limits considered:\n");
    for b in &c.host_limits {
        out.push_str(&format!("    - {}\n", b.arithmetic));
    }
    if let Some(n) = c.processes_needed {
        out.push_str(&format!(
            "  processes needed for the target: {} ({} sockets over the per-process figure)\n",
            group(n),
            group(c.target * c.sockets_per_connection)
        ));
    }
    for n in &c.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    let verdict = match (c.meets_target, c.processes_needed) {
        (true, Some(n)) if n > 1 => format!(
            "host-wide limits allow it, spread over at least {} processes",
            group(n)
        ),
        (true, _) => "host-wide limits allow it".to_string(),
        (false, _) => "host-wide limits do not allow it as they are".to_string(),
    };
    out.push_str(&format!("  target {}: {verdict}\n", group(c.target)));
    out
}

/// Usage figures now, and the counters that show a limit was hit.
fn usage_and_counters(r: &CheckReport, _color: bool) -> String {
    let mut out = String::new();
    if !r.usage.is_empty() {
        out.push_str("\nUsage now:\n");
        for u in &r.usage {
            out.push_str(&format!("  {}: {}\n", u.what, group(u.value)));
        }
    }
    let hit: Vec<String> = r
        .counters
        .iter()
        .filter(|c| c.value > 0)
        .map(|c| {
            format!(
                "  {} {} = {} (see {})",
                c.group,
                c.name,
                group(c.value),
                c.knob
            )
        })
        .collect();
    out.push_str(
        "\nCounters that show a limit was hit since boot (since this network namespace was made, in one):",
    );
    if hit.is_empty() {
        out.push_str(if r.counters.is_empty() {
            " unreadable\n"
        } else {
            " none\n"
        });
    } else {
        out.push('\n');
        out.push_str(&hit.join("\n"));
        out.push('\n');
    }
    out
}

/// The count per status and the exit code.
fn result(r: &CheckReport, _color: bool) -> String {
    let s = &r.summary;
    format!(
        "\nResult: {} ok, {} warn, {} fail, {} absent, {} info{} -> exit {}\n",
        s.ok,
        s.warn,
        s.fail,
        s.absent,
        s.info,
        if r.strict {
            " (strict: warnings fail)"
        } else {
            ""
        },
        s.exit_code
    )
}
