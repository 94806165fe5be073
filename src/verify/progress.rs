//! What a run says while it runs, on stderr: an indicatif bar on a terminal, a plain line
//! every few seconds otherwise, and one-off lines between phases.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::units::group;

/// Period of the plain progress line when stderr is not a terminal.
const LINE_PERIOD: Duration = Duration::from_secs(5);

/// A progress display for one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").finish()
    }
}

impl Progress {
    pub fn new(target: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(target);
            b.set_style(
                // wide_msg: the message is cut to the terminal, so the bar never wraps (a wrapped
                // bar leaves a line behind when it is cleared).
                ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            last_line: Instant::now(),
        }
    }

    pub fn update(&mut self, pos: u64, msg: String) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(msg);
            }
            None => {
                if self.last_line.elapsed() >= LINE_PERIOD {
                    self.last_line = Instant::now();
                    eprintln!("{} {msg}", group(pos));
                }
            }
        }
    }

    pub fn say(&self, line: &str) {
        let fitted = crate::text::fit(line, crate::text::width());
        let line = fitted.as_str();
        match &self.bar {
            // A cleared bar draws nothing more: its println would leave the cursor at the end
            // of the line, and the report would start on it.
            Some(b) if !b.is_finished() => b.println(line),
            _ => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
