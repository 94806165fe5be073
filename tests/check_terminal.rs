//! `tune check` in a real terminal (tmux at 80 and 120 columns, read with `capture-pane -J`): what a person sees first, and that nothing overflows.

mod tmux_support;

use std::path::Path;

use tmux_support::{available, run};

#[test]
fn the_harness_sees_a_line_that_overflows_and_the_exit_code() {
    if !available() {
        return;
    }
    let sh = Path::new("/bin/sh");
    let script = "printf '%0100d\\n' 7; echo short; exit 3";
    let narrow = run(80, sh, &["-c", script], &[]);
    assert_eq!(narrow.exit, 3, "{}", narrow.text());
    assert_eq!(
        narrow.lines.len(),
        2,
        "-J joins the wrapped line: {}",
        narrow.text()
    );
    assert_eq!(narrow.overflowing().len(), 1, "{}", narrow.text());
    assert!(narrow.lines[0].ends_with("07"));
    let wide = run(120, sh, &["-c", script], &[]);
    assert!(wide.overflowing().is_empty(), "{}", wide.text());
    // The terminal's width is what the command sees.
    let cols = run(80, sh, &["-c", "stty size"], &[]);
    assert!(
        cols.lines.iter().any(|l| l.ends_with(" 80")),
        "{}",
        cols.text()
    );
}
