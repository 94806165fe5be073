//! Pure: what a server costs per connection, fitted over the samples `tune load --server-pid`
//! takes at each step of its ramp (least squares, with R² and whether the cost changes with
//! the count), split into user and kernel memory.

use serde::{Deserialize, Serialize};

use crate::units::{bytes, group};

/// The server as one step of the ramp saw it. `None`: not readable (no cgroup, process gone).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// Seconds since the load started.
    pub seconds: f64,
    /// Websockets open, as the clients count them.
    pub connections: u64,
    /// Sockets among the server processes' fds.
    pub server_sockets: Option<u64>,
    /// VmRSS of the server processes, summed.
    pub rss: Option<u64>,
    /// RssAnon of the server processes, summed: heap and stacks.
    pub rss_anon: Option<u64>,
    /// The memory cgroup's charge: v1 memory.usage_in_bytes, v2 memory.current.
    pub cgroup_charge: Option<u64>,
    /// Its kernel part: v1 memory.kmem.usage_in_bytes, v2 memory.stat slab + sock.
    pub cgroup_kernel: Option<u64>,
    /// Its file pages (page cache the kernel reclaims at the limit before an OOM kill).
    pub cgroup_file: Option<u64>,
    /// The host's socket slab caches (every socket of the host, both ends of loopback ones).
    pub host_socket_slab: Option<u64>,
}

/// A straight line fitted by least squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination: 1 is a perfect line.
    pub r2: f64,
}

/// Least squares over (x, y); `None` with fewer than two distinct x.
pub fn least_squares(pts: &[(f64, f64)]) -> Option<Line> {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 {
        (sxy * sxy) / (sxx * syy)
    } else {
        1.0
    };
    Some(Line {
        slope,
        intercept: my - slope * mx,
        r2,
    })
}

/// Steps a fit needs: a baseline and two steps.
pub const MIN_SAMPLES: usize = 3;

/// The cost per connection is told as changing with the count when the slopes of the ramp's
/// lower and upper halves differ by more than this share of the larger (pools, arenas, GC).
pub const VARIES_SHARE: f64 = 0.25;

/// Below this R² the line is told as a poor fit (the cost is not proportional to the count).
pub const POOR_FIT_R2: f64 = 0.9;

/// A cost per connection that changes with the count: the slope over each half of the ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Varies {
    pub lower_bytes: f64,
    pub lower_range: [u64; 2],
    pub upper_bytes: f64,
    pub upper_range: [u64; 2],
}

/// The fitted cost of one connection to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostFit {
    /// Marginal bytes per connection (the slope), user and kernel together.
    pub bytes_per_connection: f64,
    /// Its user-space part: heap, buffers, the runtime's objects.
    pub user_bytes: f64,
    /// Its kernel part: the socket's slab objects and buffers.
    pub kernel_bytes: f64,
    /// R² of the fit of the total.
    pub r_squared: f64,
    /// What the total was read from: `memory cgroup` (its charge, kernel part included) or
    /// `rss + socket slab` (RssAnon, plus the host's socket slab per server socket).
    pub source: String,
    /// The connection counts the ramp was measured over.
    pub range: [u64; 2],
    pub samples: usize,
    /// (last − first) / connections added, for comparison with the slope.
    pub average_bytes: f64,
    /// Set when the cost changes with the count.
    pub varies: Option<Varies>,
    /// How the charge is projected beyond the ramp (`None`: not read from a memory cgroup).
    pub beyond: Option<Beyond>,
}

/// The line the memory cgroup's charge is projected on beyond the ramp: through the ramp's
/// top (measured), at the slope of the whole ramp when the cost is constant, or of its later
/// half when it changes with the count (a runtime that grows its heap up front, as V8 does,
/// costs more per connection early than late: the early slope would under-predict the wall).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beyond {
    /// Marginal bytes per connection beyond the ramp.
    pub bytes_per_connection: f64,
    /// The connection counts that slope was fitted over.
    pub range: [u64; 2],
    /// The charge at no connections on that line, page cache left out: (charge − page cache
    /// at the top) − connections at the top × the slope.
    pub base_bytes: f64,
}

impl Beyond {
    /// Connections `limit` allows on this line.
    pub fn connections_at(&self, limit: u64) -> Option<u64> {
        (self.bytes_per_connection > 0.0)
            .then(|| ((limit as f64 - self.base_bytes) / self.bytes_per_connection).max(0.0) as u64)
    }
}

impl CostFit {
    /// One line: "15.6 KB per connection (user 12.8 KB, kernel 2.8 KB), over 0 to 2,000 ..."
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} per connection (user {}, kernel {}), measured over {} to {} connections in {} samples from the {} (R² {:.3})",
            bytes(self.bytes_per_connection.round() as u64),
            bytes(self.user_bytes.max(0.0).round() as u64),
            bytes(self.kernel_bytes.max(0.0).round() as u64),
            group(self.range[0]),
            group(self.range[1]),
            self.samples,
            self.source,
            self.r_squared
        );
        if let Some(v) = &self.varies {
            s.push_str(&format!(
                "; not constant: {} per connection over {} to {}, {} over {} to {} (pools, arenas or GC): the projection to the limit goes on from the ramp's top at the later figure; measure closer to the count you will run for a firmer one",
                bytes(v.lower_bytes.max(0.0).round() as u64),
                group(v.lower_range[0]),
                group(v.lower_range[1]),
                bytes(v.upper_bytes.max(0.0).round() as u64),
                group(v.upper_range[0]),
                group(v.upper_range[1]),
            ));
        } else if self.r_squared < POOR_FIT_R2 {
            s.push_str("; a poor line: the memory did not follow the count closely, so take the figure as rough");
        }
        s
    }
}

/// Fits the cost over the samples. `sockets_per_connection_here` is how many of the host's
/// sockets one connection adds (2 when the clients run on this host too: loopback), used only
/// when no memory cgroup is read and the kernel part comes from the host's socket slab.
pub fn fit(samples: &[ServerSample], sockets_per_connection_here: u64) -> Option<CostFit> {
    // Up to the most connections: samples after a server's death measure nothing.
    let top = samples
        .iter()
        .enumerate()
        .max_by_key(|(i, s)| (s.connections, usize::MAX - i))
        .map_or(0, |(i, _)| i);
    let samples = &samples[..=top.min(samples.len().saturating_sub(1))];
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let xs = |get: &dyn Fn(&ServerSample) -> Option<u64>| -> Option<Vec<(f64, f64)>> {
        samples
            .iter()
            .map(|s| get(s).map(|y| (s.connections as f64, y as f64)))
            .collect()
    };
    let first = samples.first()?;
    let last = samples.last()?;
    let added = last.connections.saturating_sub(first.connections);
    if added == 0 {
        return None;
    }
    let (kernel, source, pts) = match xs(&|s| s.cgroup_charge) {
        Some(charge) => {
            let kernel = xs(&|s| s.cgroup_kernel)
                .and_then(|k| least_squares(&k))
                .map_or(0.0, |l| l.slope);
            (kernel, "memory cgroup", charge)
        }
        None => {
            let anon = xs(&|s| s.rss_anon)?;
            let slab = xs(&|s| s.host_socket_slab);
            let per = sockets_per_connection_here.max(1) as f64;
            let pts: Vec<(f64, f64)> = match &slab {
                Some(sl) => anon
                    .iter()
                    .zip(sl)
                    .map(|(a, k)| (a.0, a.1 + k.1 / per))
                    .collect(),
                None => anon.clone(),
            };
            let kernel = slab
                .and_then(|k| least_squares(&k))
                .map_or(0.0, |l| l.slope / per);
            (kernel, "rss + socket slab", pts)
        }
    };
    let total = least_squares(&pts)?;
    let avg = (pts.last()?.1 - pts.first()?.1) / added as f64;
    let varies = varies(&pts);
    let beyond = (source == "memory cgroup")
        .then(|| beyond(&pts, varies.as_ref(), total.slope, last))
        .flatten();
    Some(CostFit {
        bytes_per_connection: total.slope,
        user_bytes: total.slope - kernel,
        kernel_bytes: kernel,
        r_squared: total.r2,
        source: source.into(),
        range: [first.connections, last.connections],
        samples: samples.len(),
        average_bytes: avg,
        varies,
        beyond,
    })
}

/// The projection line: the later half's slope when the cost varies, else the whole ramp's;
/// through the top sample's charge less its page cache.
fn beyond(
    pts: &[(f64, f64)],
    varies: Option<&Varies>,
    whole: f64,
    top: &ServerSample,
) -> Option<Beyond> {
    let (slope, range) = match varies {
        Some(v) => (v.upper_bytes, v.upper_range),
        None => (whole, [pts.first()?.0 as u64, pts.last()?.0 as u64]),
    };
    let charge = top
        .cgroup_charge?
        .saturating_sub(top.cgroup_file.unwrap_or(0));
    Some(Beyond {
        bytes_per_connection: slope,
        range,
        base_bytes: charge as f64 - top.connections as f64 * slope,
    })
}

/// The slopes of the lower and upper halves of the ramp, when they differ by more than
/// [`VARIES_SHARE`]; needs five samples (three to a half, sharing the middle one).
fn varies(pts: &[(f64, f64)]) -> Option<Varies> {
    if pts.len() < 5 {
        return None;
    }
    let mid = pts.len() / 2;
    let (lo, hi) = (&pts[..=mid], &pts[mid..]);
    let (a, b) = (least_squares(lo)?.slope, least_squares(hi)?.slope);
    let big = a.abs().max(b.abs());
    if big <= 0.0 || (a - b).abs() / big <= VARIES_SHARE {
        return None;
    }
    let range = |p: &[(f64, f64)]| [p[0].0 as u64, p[p.len() - 1].0 as u64];
    Some(Varies {
        lower_bytes: a,
        lower_range: range(lo),
        upper_bytes: b,
        upper_range: range(hi),
    })
}

/// Connections the memory limit allows before the OOM killer: those open at the ramp's top
/// plus what the headroom then buys at the cost beyond the ramp, the page cache counted as
/// headroom (the kernel reclaims it first).
pub fn projected_at_limit(fit: &CostFit, limit: u64) -> Option<u64> {
    fit.beyond.as_ref()?.connections_at(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(conns: u64, charge: u64, kernel: u64) -> ServerSample {
        ServerSample {
            connections: conns,
            cgroup_charge: Some(charge),
            cgroup_kernel: Some(kernel),
            rss_anon: Some(charge - kernel),
            ..Default::default()
        }
    }

    #[test]
    fn a_straight_ramp_gives_its_slope_and_split() {
        let s: Vec<_> = (0..=10)
            .map(|i| {
                sample(
                    i * 200,
                    18_000_000 + i * 200 * 15_000,
                    200_000 + i * 200 * 3_000,
                )
            })
            .collect();
        let f = fit(&s, 2).unwrap();
        assert!((f.bytes_per_connection - 15_000.0).abs() < 1.0, "{f:?}");
        assert!((f.kernel_bytes - 3_000.0).abs() < 1.0);
        assert!((f.user_bytes - 12_000.0).abs() < 1.0);
        assert!(f.r_squared > 0.999);
        assert_eq!(f.range, [0, 2000]);
        assert!(f.varies.is_none());
        assert!(
            f.describe().starts_with(
                "15.0 KB per connection (user 12.0 KB, kernel 3.0 KB), measured over 0 to 2,000"
            ),
            "{}",
            f.describe()
        );
        let proj = projected_at_limit(&f, 50_331_648).unwrap();
        assert_eq!(proj, 2000 + (50_331_648 - 48_000_000) / 15_000);
    }

    #[test]
    fn a_cost_that_grows_with_the_count_is_told_with_its_ranges() {
        // 5 KB each up to 1,000, then 20 KB each (a pool that doubles).
        let s: Vec<_> = (0..=10)
            .map(|i| {
                let c = i * 200;
                let charge = if c <= 1000 {
                    c * 5000
                } else {
                    5_000_000 + (c - 1000) * 20_000
                };
                sample(c, 10_000_000 + charge, 100)
            })
            .collect();
        let f = fit(&s, 1).unwrap();
        let v = f.varies.as_ref().unwrap();
        assert!((v.lower_bytes - 5000.0).abs() < 1.0, "{v:?}");
        assert!((v.upper_bytes - 20000.0).abs() < 1.0, "{v:?}");
        assert_eq!(v.lower_range, [0, 1000]);
        assert_eq!(v.upper_range, [1000, 2000]);
        assert!(
            f.describe().contains(
                "not constant: 5.0 KB per connection over 0 to 1,000, 20.0 KB over 1,000 to 2,000"
            ),
            "{}",
            f.describe()
        );
        // Beyond the ramp the charge grows at the later slope, from the top's 35 MB: 30 MB
        // more is 1,500 more connections.
        let b = f.beyond.as_ref().unwrap();
        assert_eq!(b.range, [1000, 2000]);
        assert!(
            (b.base_bytes - (35_000_000.0 - 2000.0 * 20_000.0)).abs() < 1.0,
            "{b:?}"
        );
        assert_eq!(projected_at_limit(&f, 65_000_000), Some(3500));
    }

    #[test]
    fn a_cost_that_falls_after_a_warm_up_is_projected_at_its_later_slope() {
        // Node ws 20 in a 96 MiB memory cgroup (v1, kernel 6.18.44), measured by tune load
        // --server-pid --conns 4400 --steps 20: V8 grows its heap over the first ~1,750
        // connections (7.9 KB each), then 4.8 KB each. A second load ran it to its OOM kill
        // at 17,039.
        let charge = [
            11_419_648, 13_082_624, 15_110_144, 16_510_976, 18_558_976, 20_348_928, 23_924_736,
            25_718_784, 25_649_152, 26_689_536, 27_516_928, 28_041_216, 28_303_360, 28_827_648,
            29_650_944, 31_485_952, 32_796_672, 33_923_072, 35_495_936, 36_274_176, 36_990_976,
        ];
        let s: Vec<_> = charge
            .iter()
            .enumerate()
            .map(|(i, c)| ServerSample {
                connections: i as u64 * 220,
                cgroup_charge: Some(*c),
                cgroup_file: Some(4096),
                ..Default::default()
            })
            .collect();
        let f = fit(&s, 2).unwrap();
        let v = f.varies.as_ref().unwrap();
        assert_eq!(v.upper_range, [2200, 4400]);
        let b = f.beyond.as_ref().unwrap();
        assert_eq!(b.range, [2200, 4400]);
        assert_eq!(b.bytes_per_connection, v.upper_bytes);
        let at = projected_at_limit(&f, 96 << 20).unwrap();
        assert!(
            (at as f64 - 17_039.0).abs() <= 0.1 * 17_039.0,
            "{at}: {f:?}"
        );
        // Through the top: the charge measured at 4,400 plus the headroom at the later slope.
        let top = 36_990_976.0 - 4096.0;
        let want = 4400.0 + ((96u64 << 20) as f64 - top) / b.bytes_per_connection;
        assert!((at as f64 - want).abs() <= 1.0, "{at} against {want}");
    }

    #[test]
    fn without_a_cgroup_the_kernel_part_is_the_socket_slab_per_server_socket() {
        let s: Vec<_> = (0..=4)
            .map(|i| ServerSample {
                connections: i * 100,
                rss_anon: Some(1_000_000 + i * 100 * 8_000),
                host_socket_slab: Some(50_000_000 + i * 100 * 2 * 4_000),
                ..Default::default()
            })
            .collect();
        let f = fit(&s, 2).unwrap();
        assert_eq!(f.source, "rss + socket slab");
        assert!((f.kernel_bytes - 4000.0).abs() < 1.0, "{f:?}");
        assert!((f.bytes_per_connection - 12000.0).abs() < 1.0, "{f:?}");
    }

    #[test]
    fn too_few_samples_or_no_growth_fit_nothing() {
        assert!(fit(&[sample(0, 10, 1), sample(10, 20, 1)], 1).is_none());
        // The server died at the last step: the samples after the top are left out.
        let f = fit(
            &[
                sample(0, 10, 1),
                sample(10, 20, 1),
                sample(20, 30, 1),
                sample(0, 0, 0),
            ],
            1,
        )
        .unwrap();
        assert_eq!(f.range, [0, 20]);
        assert!(fit(&[sample(5, 10, 1), sample(5, 20, 1), sample(5, 30, 1)], 1).is_none());
    }
}
