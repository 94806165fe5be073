//! The reconnect storm a host must survive (N clients reconnecting within T seconds, from a
//! profile's `storm = "N/T"` or `check --storm N/T`, both read by [`parse`]), and what it requires of the listen queues: the clients that arrive in
//! one second (before a dropped SYN is retransmitted) spread over the server's listeners give
//! somaxconn and tcp_max_syn_backlog, and syncookies on; and the warning when the accept rate a
//! storm measured on this host (`serve --verify --storm`) is below N/T.

use super::{Profile, Requirement};
use crate::knobs::{KnobId, Value};
use crate::units::group;
use crate::values::{Input, Suggest};

/// The file in tune's state directory where `serve --verify --storm` saves the accept rate
/// it measured (`accept_rate clients`, one line) for `check --storm` to compare with.
pub const RATE_FILE: &str = "storm-rate";

/// A storm to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Storm {
    pub clients: u64,
    /// Seconds the clients reconnect within (full jitter over them); 0: all at once.
    pub within_secs: u64,
}

/// `N/SECS` (a profile's `storm` and `check --storm`): a count in the one count parser's forms
/// (`1M`, `50k`, `1,000,000`) and whole seconds (`30` or `30s`; `0`: all at once).
pub fn parse(s: &str) -> Result<Storm, String> {
    let (n, secs) = s
        .split_once('/')
        .ok_or_else(|| format!("expected N/SECS (1M/30: a million within 30 s); found {s:?}"))?;
    Ok(Storm {
        clients: crate::quantity::parse_positive_count(n)?,
        within_secs: crate::quantity::parse_count(secs.trim().trim_end_matches('s'))?,
    })
}

impl Storm {
    /// Reconnects arriving per second.
    pub fn rate(&self) -> u64 {
        self.clients.div_ceil(self.within_secs.max(1))
    }

    /// In words: `1,000,000 clients reconnecting within 30 s`.
    pub fn describe(&self) -> String {
        if self.within_secs == 0 {
            format!("{} clients reconnecting at once", group(self.clients))
        } else {
            format!(
                "{} clients reconnecting within {} s",
                group(self.clients),
                group(self.within_secs)
            )
        }
    }
}

/// Raises the profile's listen-queue requirements to what the storm needs over `listeners`
/// SO_REUSEPORT listeners (never lowers them).
pub fn apply(profile: &mut Profile, storm: &Storm, listeners: u64) {
    let procs = listeners.max(1);
    let burst = storm.rate();
    let r = crate::backlog::required(burst, procs);
    let why = format!(
        "{}: {} arrive in the second before a dropped SYN is retransmitted; {}",
        storm.describe(),
        group(burst),
        crate::backlog::reason(&r, burst, procs)
    );
    let mut raise = |id: KnobId, v: u64, why: String| {
        let now = profile.requirements.get(&id).and_then(|r| match r.value {
            Value::Int(x) => Some(x),
            _ => None,
        });
        if now.is_none_or(|x| x < v) {
            profile.requirements.insert(
                id,
                Requirement {
                    value: Value::Int(v),
                    why,
                },
            );
        }
    };
    raise(KnobId::Somaxconn, r.somaxconn, why.clone());
    raise(
        KnobId::TcpMaxSynBacklog,
        r.tcp_max_syn_backlog,
        format!("{why}; without SYN cookies the kernel drops SYNs at three quarters of it"),
    );
    raise(
        KnobId::TcpSyncookies,
        1,
        format!(
            "{}: a full SYN queue answers with a cookie instead of a drop",
            storm.describe()
        ),
    );
}

/// The warning when the accept rate measured here (reconnects per second a storm of
/// `measured_clients` kept up, 10% to 90% back) is below what the storm needs.
pub fn rate_warning(storm: &Storm, measured_rate: f64, measured_clients: u64) -> Option<String> {
    let need = storm.rate();
    if measured_rate >= need as f64 {
        return None;
    }
    let secs = (storm.clients as f64 / measured_rate.max(1.0)).ceil() as u64;
    Some(format!(
        "{} need {}/s; this host kept up {}/s in a storm of {} (serve {} {}): the clients need full jitter over at least {} s, or more cores",
        storm.describe(),
        group(need),
        group(measured_rate as u64),
        group(measured_clients),
        Suggest::input(Input::Verify),
        Suggest::input(Input::Storm),
        group(secs)
    ))
}

/// The rate file `serve --verify --storm` saves: `accept_rate clients` on one line.
pub fn parse_saved(text: &str) -> Option<(f64, u64)> {
    let mut it = text.split_whitespace();
    let rate = it.next()?.parse().ok()?;
    let clients = it.next()?.parse().ok()?;
    Some((rate, clients))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_within_30_s_needs_the_queues_for_33k_a_second() {
        let mut p = crate::profile::for_target(1_000_000, crate::knobs::Role::Server);
        let s = Storm {
            clients: 1_000_000,
            within_secs: 30,
        };
        assert_eq!(s.rate(), 33_334);
        apply(&mut p, &s, 80);
        // 33,334 a second over 80 listeners, x2 for the spread: 834 per listener.
        let v = |p: &Profile, id| p.requirements[&id].value;
        let somax = match v(&p, KnobId::Somaxconn) {
            Value::Int(x) => x,
            _ => panic!(),
        };
        assert!(somax >= 834, "{somax}");
        assert_eq!(v(&p, KnobId::TcpSyncookies), Value::Int(1));
        let all_at_once = Storm {
            clients: 1_000_000,
            within_secs: 0,
        };
        apply(&mut p, &all_at_once, 80);
        assert_eq!(v(&p, KnobId::Somaxconn), Value::Int(25_000));
        assert!(p.requirements[&KnobId::Somaxconn]
            .why
            .contains("1,000,000 clients reconnecting at once"));
    }

    #[test]
    fn warns_when_the_measured_rate_is_short() {
        let s = Storm {
            clients: 1_000_000,
            within_secs: 30,
        };
        assert!(rate_warning(&s, 41_000.0, 100_000).is_none());
        let w = rate_warning(&s, 18_302.0, 100_000).unwrap();
        assert!(
            w.contains("need 33,334/s; this host kept up 18,302/s"),
            "{w}"
        );
        assert!(w.contains("full jitter over at least 55 s"), "{w}");
        assert_eq!(parse_saved("18302.5 100000\n"), Some((18302.5, 100_000)));
        assert_eq!(parse_saved("x"), None);
    }
}
