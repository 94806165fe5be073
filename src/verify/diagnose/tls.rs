//! Pure: whether TLS handshake CPU, rather than a limit, set the pace of a ramp. With both
//! ends on this host every handshake costs server plus client CPU out of the same cores, so
//! the cores allow at most cores × 1 s / (server + client) handshakes a second; a ramp running
//! near that was CPU-bound, and no knob would have made it faster.

use crate::units::group;

/// The share of the handshake-CPU ceiling above which the ramp counts as CPU-bound. The
/// ceiling counts handshake CPU alone; the same cores also accept, upgrade to websockets and
/// keep the tally, so a ramp at 60 % of it has spent most of the machine on handshakes.
pub const CPU_BOUND_SHARE: f64 = 0.6;

/// What a TLS ramp cost and how fast it ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandshakeRamp {
    /// Server CPU per handshake, µs.
    pub server_us: f64,
    /// Client CPU per handshake, µs (0 when the clients are elsewhere).
    pub client_us: f64,
    /// Cores both ends share.
    pub cores: u64,
    /// Connections opened per second over the ramp.
    pub rate: f64,
}

impl HandshakeRamp {
    /// Handshakes a second the cores allow, at what each cost.
    pub fn ceiling(&self) -> f64 {
        self.cores as f64 * 1e6 / (self.server_us + self.client_us)
    }
}

/// "TLS handshakes cost 576 µs server + 373 µs client CPU; 2 cores allow ~2,100/s; the ramp
/// ran at 1,431/s: CPU-bound, not a limit", when the ramp ran at [`CPU_BOUND_SHARE`] of the
/// ceiling or more; `None` otherwise (or without figures).
pub fn handshake_cpu_bound(h: &HandshakeRamp) -> Option<String> {
    let per = h.server_us + h.client_us;
    if !(per > 0.0 && per.is_finite() && h.cores > 0 && h.rate > 0.0) {
        return None;
    }
    let ceiling = h.ceiling();
    (h.rate >= CPU_BOUND_SHARE * ceiling).then(|| {
        format!(
            "TLS handshakes cost {:.0} µs server + {:.0} µs client CPU; {} core{} allow ~{}/s; the ramp ran at {}/s: CPU-bound, not a limit",
            h.server_us,
            h.client_us,
            h.cores,
            if h.cores == 1 { "" } else { "s" },
            group(round_to(ceiling, 100.0)),
            group(h.rate.round() as u64),
        )
    })
}

/// `x` to the nearest `step` (a ceiling is an estimate: ~2,100/s, not 2,106/s).
fn round_to(x: f64, step: f64) -> u64 {
    ((x / step).round() * step) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ramp_near_the_handshake_ceiling_is_cpu_bound_and_says_its_figures() {
        // Session 6's 200k TLS run: 576 µs + 373 µs per handshake on 2 cores, 1,431/s.
        let h = HandshakeRamp {
            server_us: 576.0,
            client_us: 373.0,
            cores: 2,
            rate: 1_431.0,
        };
        assert_eq!(
            handshake_cpu_bound(&h).unwrap(),
            "TLS handshakes cost 576 µs server + 373 µs client CPU; 2 cores allow ~2,100/s; the ramp ran at 1,431/s: CPU-bound, not a limit"
        );
    }

    #[test]
    fn a_ramp_far_below_it_is_not_blamed_on_the_handshakes() {
        let h = HandshakeRamp {
            server_us: 576.0,
            client_us: 373.0,
            cores: 2,
            rate: 300.0,
        };
        assert_eq!(handshake_cpu_bound(&h), None);
        let none = HandshakeRamp {
            server_us: 0.0,
            client_us: 0.0,
            ..h
        };
        assert_eq!(handshake_cpu_bound(&none), None);
    }
}
