//! `tune top`'s screen: a [`View`] drawn into a ratatui buffer (the live terminal and `--once`'s plain text share it).
//!
//! One line per limit: name, use / limit, %, a bar, a sparkline of the history, the rate and
//! the time to exhaustion at that rate; the binding limit first, marked `>` (and in colour when
//! colour is on). Then sockstat's TCP line and the drop counters, marked `!` while they move.
//! Everything fits 80 columns; wider terminals get longer sparklines.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Sparkline, Widget};

use super::model::{Kind, Row, View};
use crate::units::group;

/// Columns before the sparkline: marker 2, name 14, use/limit 13, % 4, bar 10, and spaces;
/// after it the rate 9 and the time to exhaustion 8.
const NAME: usize = 14;
const USE: usize = 13;
const PCT: usize = 4;
const BAR: usize = 10;
const RATE: usize = 9;
const TTE: usize = 8;
const LEFT: usize = 2 + NAME + 1 + USE + 1 + PCT + 1 + BAR + 1;
const RIGHT: usize = 1 + RATE + 1 + TTE;
/// The narrowest screen laid out as designed (80×24 over SSH).
pub const MIN_WIDTH: u16 = 80;

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Colour (off with NO_COLOR or without a terminal).
    pub color: bool,
    /// Seconds between refreshes, for the header.
    pub interval: f64,
}

/// Sparkline columns at `width`.
pub fn spark_cols(width: u16) -> usize {
    usize::from(width.max(MIN_WIDTH)).saturating_sub(LEFT + RIGHT)
}

/// Lines the view needs (the terminal may cut the notes).
pub fn height(view: &View) -> u16 {
    let counters = view.counters.len().div_ceil(2);
    (2 + view.rows.len() + 2 + counters + view.notes.len()) as u16
}

/// Draws `view` into `buf` over `area`.
pub fn draw(area: Rect, buf: &mut Buffer, view: &View, opts: &Options) {
    let mut y = area.y;
    let bottom = area.y + area.height;
    let line = |buf: &mut Buffer, y: &mut u16, l: Line| {
        if *y < bottom {
            buf.set_line(area.x, *y, &l, area.width);
            *y += 1;
        }
    };
    line(buf, &mut y, header(view, opts));
    line(
        buf,
        &mut y,
        Line::from(format!(
            "  {:<NAME$} {:>USE$} {:>PCT$} {:<BAR$} {:<sp$} {:>RATE$} {:>TTE$}",
            "limit",
            "use/limit",
            "%",
            "",
            format!("last {}", duration(view.span_seconds)),
            "rate",
            "exhausts",
            sp = spark_cols(area.width),
        )),
    );
    for row in &view.rows {
        if y >= bottom {
            break;
        }
        draw_row(area, buf, y, row, opts);
        y += 1;
    }
    if let Some(b) = view.rows.iter().find(|r| r.binding) {
        line(
            buf,
            &mut y,
            Line::from(format!("> binds first: {}: {}", b.name, b.detail)),
        );
    }
    if let Some(t) = &view.tcp {
        line(
            buf,
            &mut y,
            Line::from(format!(
                "TCP sockets: in use {}, orphaned {}, TIME_WAIT {}, allocated {}",
                group(t.inuse),
                group(t.orphan),
                group(t.tw),
                group(t.alloc)
            )),
        );
    }
    for pair in view.counters.chunks(2) {
        let spans: Vec<Span> = pair
            .iter()
            .flat_map(|c| {
                let style = if c.moving && opts.color {
                    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                };
                let text = format!(
                    "{} {:<18} {:>9} {:>8} ",
                    if c.moving { "!" } else { " " },
                    c.name,
                    group(c.total),
                    rate(c.rate, Kind::FileNr)
                );
                [Span::styled(text, style)]
            })
            .collect();
        line(buf, &mut y, Line::from(spans));
    }
    for n in &view.notes {
        line(buf, &mut y, Line::from(format!("note: {n}")));
    }
}

fn header(view: &View, opts: &Options) -> Line<'static> {
    let state = if view.paused { "  PAUSED" } else { "" };
    Line::from(format!(
        "tune top  every {}s  sort {}  [s]ort [p]ause [q]uit{state}",
        opts.interval,
        view.sort.label()
    ))
}

fn draw_row(area: Rect, buf: &mut Buffer, y: u16, row: &Row, opts: &Options) {
    let style = if row.binding && opts.color {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    let filled = ((row.ratio.min(1.0) * BAR as f64).round() as usize).min(BAR);
    let left = format!(
        "{} {:<NAME$} {:>USE$} {:>PCT$} {}{} ",
        if row.binding { ">" } else { " " },
        cut(&row.name, NAME),
        cut(
            &format!(
                "{}/{}",
                short(row.used, row.key.kind),
                short(row.limit, row.key.kind)
            ),
            USE
        ),
        format!("{:.0}%", row.ratio * 100.0),
        "█".repeat(filled),
        "░".repeat(BAR - filled),
    );
    buf.set_line(area.x, y, &Line::styled(left, style), area.width);
    let cols = spark_cols(area.width);
    let spark_x = area.x + LEFT as u16;
    if spark_x + cols as u16 <= area.x + area.width {
        Sparkline::default()
            .data(row.spark.iter().copied())
            .style(style)
            .render(Rect::new(spark_x, y, cols as u16, 1), buf);
    }
    let right = format!(
        " {:>RATE$} {:>TTE$}",
        rate(row.rate, row.key.kind),
        exhausts(row.exhaustion_seconds)
    );
    let rx = spark_x + cols as u16;
    if rx < area.x + area.width {
        buf.set_line(rx, y, &Line::styled(right, style), area.x + area.width - rx);
    }
}

/// The buffer as plain text, trailing spaces and empty last lines removed.
pub fn to_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut lines: Vec<String> = (area.y..area.y + area.height)
        .map(|y| {
            (area.x..area.x + area.width)
                .filter_map(|x| buf.cell((x, y)).map(|c| c.symbol().to_string()))
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n") + "\n"
}

/// The view as text at `width` columns, as `--once` prints it.
pub fn once(view: &View, width: u16, opts: &Options) -> String {
    let area = Rect::new(0, 0, width.max(MIN_WIDTH), height(view));
    let mut buf = Buffer::empty(area);
    draw(area, &mut buf, view, opts);
    to_text(&buf)
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A count in at most 6 characters: exact below 100,000, else k/M/G; bytes as KiB/MiB/GiB.
pub fn short(n: u64, kind: Kind) -> String {
    let (units, step): (&[&str], f64) = if matches!(kind, Kind::Memory | Kind::MemoryCgroup) {
        (&["B", "K", "M", "G", "T"], 1024.0)
    } else {
        if n < 100_000 {
            return group(n);
        }
        (&["", "k", "M", "G", "T"], 1000.0)
    };
    let mut v = n as f64;
    let mut i = 0;
    while v >= step && i + 1 < units.len() {
        v /= step;
        i += 1;
    }
    if v < 10.0 && i > 0 {
        format!("{v:.1}{}", units[i])
    } else {
        format!("{v:.0}{}", units[i])
    }
}

/// A rate a second, signed, `—` when unknown.
pub fn rate(r: Option<f64>, kind: Kind) -> String {
    match r {
        None => "—".into(),
        Some(r) if r.abs() < 0.05 => "0/s".into(),
        Some(r) => {
            let sign = if r < 0.0 { "-" } else { "+" };
            let mag = r.abs();
            let text = if mag < 10.0 {
                format!("{mag:.1}")
            } else {
                short(mag.round() as u64, kind)
            };
            format!("{sign}{text}/s")
        }
    }
}

/// Time to exhaustion: `now` when there, `—` when not rising.
pub fn exhausts(secs: Option<f64>) -> String {
    match secs {
        None => "—".into(),
        Some(s) if s < 0.5 => "now".into(),
        Some(s) => duration(s),
    }
}

/// Seconds in the largest unit that fits: `45s`, `12m`, `3.5h`, `9d`.
pub fn duration(s: f64) -> String {
    match s {
        s if s < 90.0 => format!("{s:.0}s"),
        s if s < 90.0 * 60.0 => format!("{:.0}m", s / 60.0),
        s if s < 48.0 * 3600.0 => format!("{:.1}h", s / 3600.0),
        s => format!("{:.0}d", s / 86400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Key, Reading, Sample, State};
    use super::*;

    fn view() -> View {
        let mut st = State::default();
        for t in 0..4u64 {
            st.push(Sample {
                at: t as f64,
                readings: vec![
                    Reading {
                        key: Key {
                            kind: Kind::Fds,
                            pid: Some(4242),
                        },
                        name: "fd 4242 tune-serve-worker".into(),
                        used: 1000 + 5000 * t,
                        limit: 20_000,
                        per_connection: Some(1.0),
                        detail: "RLIMIT_NOFILE soft 20,000 hard 20,000".into(),
                    },
                    Reading {
                        key: Key {
                            kind: Kind::Memory,
                            pid: None,
                        },
                        name: "memory".into(),
                        used: 3 << 30,
                        limit: 22 << 30,
                        per_connection: Some(10_000.0),
                        detail: String::new(),
                    },
                ],
                counters: vec![("ListenOverflows", 0), ("ListenDrops", 3 * t)],
                ..Sample::default()
            });
        }
        st.view(spark_cols(80))
    }

    #[test]
    fn a_frame_fits_80_columns_with_the_binding_limit_first() {
        let v = view();
        let text = once(
            &v,
            80,
            &Options {
                color: false,
                interval: 1.0,
            },
        );
        for l in text.lines() {
            assert!(l.chars().count() <= 80, "{l:?}");
        }
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("tune top"), "{text}");
        assert!(lines[2].starts_with("> fd 4242 tune-s "), "{text}");
        assert!(lines[2].contains("16,000/20,000"), "{text}");
        assert!(lines[2].contains("80%"), "{text}");
        assert!(lines[2].contains("████████░░"), "{text}");
        assert!(lines[2].contains("+5,000/s"), "{text}");
        assert!(
            lines[2].ends_with("1s"),
            "(20,000 − 16,000) / 5,000 a second: {text}"
        );
        assert!(lines[3].starts_with("  memory"), "{text}");
        assert!(lines[3].contains("3.0G/22G"), "{text}");
        assert!(text.contains("! ListenDrops"), "{text}");
        assert!(text.contains("  ListenOverflows"), "{text}");
        assert!(text.contains("> binds first: fd 4242"), "{text}");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short(99_999, Kind::Ports), "99,999");
        assert_eq!(short(262_144, Kind::Conntrack), "262k");
        assert_eq!(short(2_466_170, Kind::FileNr), "2.5M");
        assert_eq!(short(24 << 30, Kind::Memory), "24G");
        assert_eq!(rate(Some(-1234.0), Kind::Ports), "-1,234/s");
        assert_eq!(rate(None, Kind::Ports), "—");
        assert_eq!(exhausts(Some(4000.0)), "67m");
        assert_eq!(exhausts(Some(0.0)), "now");
        assert_eq!(duration(7200.0), "2.0h");
    }
}
