//! Pure: the memory watchdog's decision before the connect phase and at each of its steps:
//! may the load generator keep opening connections for one more step without taking usable
//! memory under the floor, and how long may that step last.
//!
//! The load generator opens connections until it is told to hold, so the watchdog must decide
//! before a step what the step may cost: the connects already in flight (each may complete)
//! plus what the rate opens during the step, at the bytes per connection measured so far (the
//! prediction until enough are open to measure).

use std::time::Duration;

/// Kept free above the floor for what the watchdog cannot see coming (the lag of
/// /proc/meminfo, other processes of the host).
pub const MARGIN: u64 = 16 << 20;
/// Connections per second assumed when the load generator's rate is not known yet or could
/// jump: about three times the 27,000-34,000/s a bare C epoll program reached on this kind of
/// host (host facts), so that a step never opens more than the watchdog allowed for.
pub const ASSUMED_RATE: f64 = 100_000.0;
/// Shortest step: the watchdog re-reads memory at most this often.
pub const MIN_STEP: Duration = Duration::from_millis(5);
/// Longest step (far from the floor).
pub const MAX_STEP: Duration = Duration::from_millis(100);

/// What the watchdog knows at the start of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Memory the run may still take now, bytes (see `Mem::usable_since`).
    pub usable: u64,
    pub floor: u64,
    /// Bytes one more connection takes (kernel and user), measured or predicted.
    pub per_connection: f64,
    /// Connects that may complete without a new start: at most the load generator's
    /// concurrency (0 for external clients, which the watchdog cannot hold).
    pub in_flight: u64,
    /// Connections per second the step may open.
    pub rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Keep opening; look again after this long.
    Go(Duration),
    /// Hold now: the next step could take usable memory under the floor.
    Stop,
}

/// Connections that may still be opened before usable memory reaches the floor (less the
/// margin): the room the watchdog shares out over its steps.
pub fn room(usable: u64, floor: u64, per_connection: f64) -> f64 {
    usable.saturating_sub(floor).saturating_sub(MARGIN) as f64 / per_connection.max(1.0)
}

/// The decision for one step: stop when the connects in flight and a shortest step at `rate`
/// would not fit in the room left; otherwise the next step lasts half the time the rate needs
/// to fill what is left (between [`MIN_STEP`] and [`MAX_STEP`]).
pub fn step(s: &Step) -> Decision {
    let left = room(s.usable, s.floor, s.per_connection) - s.in_flight as f64;
    let rate = s.rate.max(1.0);
    if left < rate * MIN_STEP.as_secs_f64() {
        return Decision::Stop;
    }
    let secs = left / rate / 2.0;
    Decision::Go(Duration::from_secs_f64(secs).clamp(MIN_STEP, MAX_STEP))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn at(usable_over_floor: u64, in_flight: u64, rate: f64) -> Decision {
        step(&Step {
            usable: 1000 * MB + usable_over_floor,
            floor: 1000 * MB,
            per_connection: 10_000.0,
            in_flight,
            rate,
        })
    }

    #[test]
    fn a_floor_within_the_margin_stops_before_the_first_connection() {
        assert_eq!(at(8 * MB, 0, ASSUMED_RATE), Decision::Stop);
        assert_eq!(at(0, 0, 1.0), Decision::Stop);
        // Usable memory already under the floor.
        let s = Step {
            usable: 10 * MB,
            floor: 100 * MB,
            per_connection: 10_000.0,
            in_flight: 0,
            rate: 1.0,
        };
        assert_eq!(step(&s), Decision::Stop);
    }

    #[test]
    fn connects_in_flight_count_against_the_room() {
        // 16 MiB over the margin at 10 kB: 1,677 connections of room; 1,024 in flight leave
        // 653, more than 500 (5 ms at 100k/s): go, for a short step.
        assert_eq!(
            at(MARGIN + 16 * MB, 1024, ASSUMED_RATE),
            Decision::Go(MIN_STEP)
        );
        // 1,600 in flight leave 77: stop.
        assert_eq!(at(MARGIN + 16 * MB, 1600, ASSUMED_RATE), Decision::Stop);
    }

    #[test]
    fn steps_shorten_near_the_floor() {
        // Far from the floor: the longest step.
        assert_eq!(at(10_000 * MB, 0, 30_000.0), Decision::Go(MAX_STEP));
        // 100 MiB of room at 10 kB = 10,485 connections, at 100k/s: 52 ms.
        match at(MARGIN + 100 * MB, 0, ASSUMED_RATE) {
            Decision::Go(d) => assert_eq!(d.as_millis(), 52),
            v => panic!("{v:?}"),
        }
    }
}
