//! Reconnect storms, the parent's side: the reconnect policy (none, full jitter, exponential
//! back-off), the delay it gives each attempt (pure), and the commands that start and end a
//! storm through the shared counters. The client processes' side is `worker/reconnect.rs`.

use std::time::Duration;

use super::board::{self as b, Cmd};
use super::launcher::LoadGen;

/// A client that has not reconnected this long after it lost its connection gives up (and is
/// counted): past two minutes a person has reloaded the page, and a storm that long is a
/// finding in itself.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(120);
/// Without a policy a failed attempt is retried after this pause: what a naive client does
/// (a fixed one-second retry timer is common; a tenth keeps the storm as sharp as clients
/// make it without a busy loop on ECONNREFUSED while the server restarts).
pub const NAIVE_RETRY: Duration = Duration::from_millis(100);
/// The back-off's longest wait between two attempts (AWS's "full jitter" caps it too).
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// How a client reconnects after it lost its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Full jitter: the first attempt waits uniformly in [0, jitter] (and, without back-off,
    /// so does every retry). `None`: at once.
    pub jitter: Option<Duration>,
    /// Exponential back-off with full jitter on failed attempts: retry k waits uniformly in
    /// [0, min(BACKOFF_CAP, base × 2^(k-1))]. `None`: [`NAIVE_RETRY`] (or the jitter).
    pub backoff: Option<Duration>,
}

impl ReconnectPolicy {
    /// The policy from the board's words (0: unset).
    pub fn from_words(jitter_ms: u64, backoff_ms: u64) -> Self {
        let d = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        ReconnectPolicy {
            jitter: d(jitter_ms),
            backoff: d(backoff_ms),
        }
    }

    /// The upper bound of the wait before attempt `attempt` (0: the first after the drop).
    pub fn bound(&self, attempt: u32) -> Duration {
        match (attempt, self.jitter, self.backoff) {
            (0, j, _) => j.unwrap_or(Duration::ZERO),
            (k, _, Some(base)) => {
                let f = 1u32 << (k - 1).min(20);
                base.saturating_mul(f).min(BACKOFF_CAP)
            }
            (_, Some(j), None) => j,
            (_, None, None) => NAIVE_RETRY,
        }
    }

    /// The wait before attempt `attempt`, `unit` a uniform draw in [0, 1): full jitter, except
    /// the naive retry, which is fixed.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let bound = self.bound(attempt);
        if attempt > 0 && self.jitter.is_none() && self.backoff.is_none() {
            return bound;
        }
        bound.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// In words, for reports: `at once`, `full jitter over 30 s`, `... then back-off from 1 s`.
    pub fn describe(&self) -> String {
        let first = match self.jitter {
            Some(j) => format!("full jitter over {} s", secs(j)),
            None => "at once".into(),
        };
        match self.backoff {
            Some(b) => format!(
                "{first}, then exponential back-off with full jitter from {} s (cap {} s)",
                secs(b),
                secs(BACKOFF_CAP)
            ),
            None if self.jitter.is_some() => first,
            None => format!(
                "{first}, failed attempts retried after {} s",
                secs(NAIVE_RETRY)
            ),
        }
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

impl LoadGen {
    /// Starts a storm: from now on every lost connection reconnects by `policy`, with no cap
    /// on connects in flight; `drop_all` makes every client drop its connections at once.
    pub fn storm(&self, policy: &ReconnectPolicy, drop_all: bool) {
        let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis().max(1) as u64);
        self.board
            .set_global(b::G_RECONNECT_JITTER_MS, ms(policy.jitter));
        self.board
            .set_global(b::G_RECONNECT_BACKOFF_MS, ms(policy.backoff));
        if drop_all {
            let e = self.board.global(b::G_STORM_DROP) + 1;
            self.board.set_global(b::G_STORM_DROP, e);
        }
        self.command(Cmd::Storm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_by_policy() {
        let none = ReconnectPolicy::default();
        assert_eq!(none.delay(0, 0.7), Duration::ZERO);
        assert_eq!(none.delay(3, 0.7), NAIVE_RETRY);
        let j = ReconnectPolicy::from_words(30_000, 0);
        assert_eq!(j.delay(0, 0.5), Duration::from_secs(15));
        assert_eq!(j.delay(2, 0.25), Duration::from_millis(7500));
        let b = ReconnectPolicy::from_words(0, 1000);
        assert_eq!(b.delay(0, 0.9), Duration::ZERO);
        assert_eq!(b.bound(1), Duration::from_secs(1));
        assert_eq!(b.bound(4), Duration::from_secs(8));
        assert_eq!(b.bound(30), BACKOFF_CAP);
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(2));
    }

    #[test]
    fn described() {
        assert_eq!(
            ReconnectPolicy::default().describe(),
            "at once, failed attempts retried after 0.1 s"
        );
        assert_eq!(
            ReconnectPolicy::from_words(30_000, 0).describe(),
            "full jitter over 30 s"
        );
        assert!(ReconnectPolicy::from_words(0, 500)
            .describe()
            .contains("back-off with full jitter from 0.5 s"));
    }
}
