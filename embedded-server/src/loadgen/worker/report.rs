//! What a client process reports when it exits: its latency histograms, one JSON line on stdout.

use std::io::Write as _;

use anyhow::Context as _;
use hdrhistogram::Histogram;

use super::super::WorkerConfig;
use super::Worker;

/// Largest latency recorded (µs); longer ones are clamped to it.
pub(super) const HIST_MAX_US: u64 = 120_000_000;

/// What a client process reports when it exits: its histograms as (value, count) pairs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct WorkerReport {
    pub index: usize,
    /// Connect to 101, µs.
    pub handshake_us: Vec<(u64, u64)>,
    /// Message sent to echo received, µs.
    pub echo_us: Vec<(u64, u64)>,
    /// Connect to 101 of the reconnects in a storm, µs.
    #[serde(default)]
    pub storm_handshake_us: Vec<(u64, u64)>,
}

pub(super) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

pub(super) fn pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Runs one client process to its end and prints its [`WorkerReport`].
pub fn run_worker(cfg: WorkerConfig) -> anyhow::Result<()> {
    let index = cfg.index;
    let w = Worker::new(cfg).with_context(|| format!("load worker {index}"))?;
    let report = w.run()?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &report)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_pairs_roundtrip() {
        let mut h = new_hist();
        for v in [100u64, 200, 200, 5000] {
            h.record(v).unwrap();
        }
        let p = pairs(&h);
        assert_eq!(p.iter().map(|x| x.1).sum::<u64>(), 4);
        let mut back = new_hist();
        for (v, c) in p {
            back.record_n(v, c).unwrap();
        }
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
    }
}
