//! The wall-clock time of each verify phase, taken as laps by the orchestration and reported
//! as [`Phases`] (so a slow run says where its time went).

use std::time::Instant;

use serde::Serialize;

/// Seconds of each phase, in the order they run. A phase that did not run is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phases {
    /// The plan, the prediction, starting the server and the load generator, the baseline.
    pub prepare_seconds: Option<f64>,
    /// Opening the connections (until the target, a stall or a stop).
    pub connect_seconds: Option<f64>,
    /// Settling and reading the peak (memory, sockstat, conntrack, every process's RSS).
    pub peak_seconds: Option<f64>,
    pub hold_seconds: Option<f64>,
    /// The echo round, one message per connection.
    pub echo_seconds: Option<f64>,
    /// The clients closing every connection, until each client process has exited.
    pub close_seconds: Option<f64>,
    /// Stopping the server (the counters read after it are in the total only).
    pub stop_seconds: Option<f64>,
    /// From the start of the command to the report.
    pub total_seconds: Option<f64>,
}

/// Which lap a [`Clock`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prepare,
    Connect,
    Peak,
    Hold,
    Echo,
    Close,
    Stop,
}

/// Laps since the last one, from the start of the command.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    last: Instant,
    phases: Phases,
}

impl Clock {
    pub fn start() -> Clock {
        let now = Instant::now();
        Clock {
            start: now,
            last: now,
            phases: Phases::default(),
        }
    }

    /// Records the time since the previous lap as `phase`'s.
    pub fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        *self.slot(phase) = Some(now.duration_since(self.last).as_secs_f64());
        self.last = now;
    }

    /// Records a phase that ran inside a lap and timed itself.
    pub fn set(&mut self, phase: Phase, secs: Option<f64>) {
        *self.slot(phase) = secs;
    }

    fn slot(&mut self, phase: Phase) -> &mut Option<f64> {
        let p = &mut self.phases;
        match phase {
            Phase::Prepare => &mut p.prepare_seconds,
            Phase::Connect => &mut p.connect_seconds,
            Phase::Peak => &mut p.peak_seconds,
            Phase::Hold => &mut p.hold_seconds,
            Phase::Echo => &mut p.echo_seconds,
            Phase::Close => &mut p.close_seconds,
            Phase::Stop => &mut p.stop_seconds,
        }
    }

    /// The laps, with the whole time so far.
    pub fn finish(mut self) -> Phases {
        self.phases.total_seconds = Some(self.start.elapsed().as_secs_f64());
        self.phases
    }
}

impl Phases {
    /// One line for people: "prepare 2.1 s, connect 28.0 s, ...; whole 61.2 s".
    pub fn line(&self) -> String {
        let parts: Vec<String> = [
            ("prepare", self.prepare_seconds),
            ("connect", self.connect_seconds),
            ("peak", self.peak_seconds),
            ("hold", self.hold_seconds),
            ("echo", self.echo_seconds),
            ("close", self.close_seconds),
            ("stop", self.stop_seconds),
        ]
        .iter()
        .filter_map(|(name, s)| s.map(|s| format!("{name} {s:.1} s")))
        .collect();
        match self.total_seconds {
            Some(t) => format!("{}; whole {t:.1} s", parts.join(", ")),
            None => parts.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_follow_each_other_and_sum_to_at_most_the_whole() {
        let mut c = Clock::start();
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.lap(Phase::Prepare);
        c.lap(Phase::Connect);
        c.set(Phase::Hold, Some(0.5));
        let p = c.finish();
        let prep = p.prepare_seconds.unwrap();
        assert!(prep >= 0.005, "{p:?}");
        assert!(prep + p.connect_seconds.unwrap() <= p.total_seconds.unwrap());
        assert_eq!(p.hold_seconds, Some(0.5));
        assert_eq!(p.echo_seconds, None);
    }

    #[test]
    fn the_line_names_only_phases_that_ran() {
        let p = Phases {
            prepare_seconds: Some(2.04),
            connect_seconds: Some(28.07),
            close_seconds: Some(17.2),
            total_seconds: Some(61.26),
            ..Phases::default()
        };
        assert_eq!(
            p.line(),
            "prepare 2.0 s, connect 28.1 s, close 17.2 s; whole 61.3 s"
        );
    }
}
