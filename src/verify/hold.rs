//! The hold and echo phases: keep the connections open for the hold, then (with clients here)
//! have every connection send one message and count the echoes.

use std::time::{Duration, Instant};

use embedded_server::loadgen::Cmd;

use super::connect::short_errors;
use super::progress::Progress;
use super::rig::{Deaths, Rig, TICK};
use crate::units::group;
use crate::values::{Input, Suggest};

/// Shortest wait for the next echo before the round counts as stopped.
const ECHO_STALL_MIN: Duration = Duration::from_secs(5);

/// What the hold phase saw.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub interrupted: bool,
    pub seconds: f64,
    /// Processes that died during the hold.
    pub deaths: Deaths,
    /// Messages the server received during the hold (when the server runs here).
    pub server_messages: Option<u64>,
    /// Most held connections dropped at once: the server died.
    pub collapse: Option<super::died::Collapse>,
}

/// Holds for `d`, following the count; ends early when every client connection is gone.
/// `drops` is what the collapse watch saw while connecting.
pub fn hold(
    rig: &mut Rig,
    d: Duration,
    progress: &mut Progress,
    drops: &super::died::CollapseWatch,
) -> Held {
    let mut h = Held::default();
    let mut collapse = drops.clone();
    let msgs_before = rig.server.as_ref().map(|s| s.snapshot().messages_in);
    let t = Instant::now();
    let end = t + d;
    while Instant::now() < end {
        if rig.sleep_or_signal(TICK.min(end.saturating_duration_since(Instant::now()))) {
            h.interrupted = true;
            break;
        }
        h.deaths.extend(rig.reap(progress));
        match rig.load_snapshot() {
            Some(s) => {
                collapse.feed(Instant::now(), s.open, s.dropped + s.lost);
                if s.open == 0 && s.in_flight == 0 {
                    break; // the server closed every connection
                }
                progress.update(
                    s.open,
                    format!(
                        "holding, {:.0} s left | messages {} sent {} echoed | dropped {}",
                        end.saturating_duration_since(Instant::now()).as_secs_f64(),
                        group(s.messages_sent),
                        group(s.messages_received),
                        group(s.dropped)
                    ),
                );
            }
            None => {
                let open = rig.open(None);
                progress.update(
                    open,
                    format!(
                        "holding, {:.0} s left",
                        end.saturating_duration_since(Instant::now()).as_secs_f64()
                    ),
                );
            }
        }
    }
    h.seconds = t.elapsed().as_secs_f64();
    h.collapse = collapse.found;
    h.server_messages = rig
        .server
        .as_ref()
        .zip(msgs_before)
        .map(|(s, before)| s.snapshot().messages_in.saturating_sub(before));
    h
}

/// What the echo phase saw.
#[derive(Debug, Clone, Default)]
pub struct Echoed {
    /// Echoes received; `None` when no echo round ran (external mode).
    pub echoes: Option<u64>,
    pub notes: Vec<String>,
    pub interrupted: bool,
    /// How long the round took (`None`: no round ran).
    pub seconds: Option<f64>,
}

/// One echo round over the `reached` connections; in external mode only a note of what the
/// other hosts' clients sent during the hold.
pub fn echo(
    rig: &Rig,
    reached: u64,
    held: &Held,
    stall: Duration,
    progress: &mut Progress,
) -> Echoed {
    let mut e = Echoed::default();
    let Some(cl) = &rig.clients else {
        e.notes.push(format!(
            "external mode: the clients' messages during the hold: {} (send them with tune load {})",
            group(held.server_messages.unwrap_or(0)),
            Suggest::input(Input::MessageInterval)
        ));
        return e;
    };
    let g = &cl.gen;
    let t = Instant::now();
    let before = g.snapshot().echo_recv;
    g.echo_round();
    let mut last = before;
    let mut last_t = Instant::now();
    loop {
        if rig.sleep_or_signal(TICK) {
            e.interrupted = true;
            break;
        }
        let s = g.snapshot();
        let got = s.echo_recv - before;
        progress.update(got, format!("echoes | {}", short_errors(&s)));
        if got >= reached {
            break;
        }
        if s.echo_recv > last {
            last = s.echo_recv;
            last_t = Instant::now();
        } else if last_t.elapsed() > stall.max(ECHO_STALL_MIN) {
            e.notes.push(format!(
                "the echo round stopped at {} of {} echoes",
                group(got),
                group(reached)
            ));
            break;
        }
    }
    e.echoes = Some(g.snapshot().echo_recv - before);
    e.seconds = Some(t.elapsed().as_secs_f64());
    g.command(Cmd::Hold);
    e
}
