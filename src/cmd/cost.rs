//! The server's measured cost per connection for `tune check`: read from a saved `tune load
//! --server-pid` report (`--cost-from`) or given (`--cost-per-conn`), with the server's memory
//! cgroup now (`--pid`) for the bound.

use super::Context;
use crate::capacity::{CgroupNow, MeasuredCost};
use crate::cli::check::CheckArgs;
use crate::kernel::Host;
use crate::units::{bytes, group};
use crate::verify::cost::{CostFit, ServerSample};

/// What a load report says about the server (the part of docs/load-schema.json read here).
#[derive(Debug, serde::Deserialize)]
struct Report {
    url: String,
    server: Option<Server>,
}

#[derive(Debug, serde::Deserialize)]
struct Server {
    cgroup: Option<String>,
    samples: Vec<ServerSample>,
    cost: Option<CostFit>,
}

/// The measured cost the arguments give, if any.
pub fn measured(
    ctx: &Context,
    args: &CheckArgs,
    profile: &crate::profile::Profile,
) -> anyhow::Result<Option<MeasuredCost>> {
    let (bytes_per_connection, source, baseline) = match (&args.cost_from, args.cost_per_conn) {
        (Some(file), _) => {
            let (cost, url, base) = from_report(file)?;
            let slope = cost
                .beyond
                .as_ref()
                .map_or(cost.bytes_per_connection, |b| b.bytes_per_connection);
            let mut source = format!(
                "measured by tune load on {url} over {} to {} connections, {}",
                group(cost.range[0]),
                group(cost.range[1]),
                file.display()
            );
            if let (Some(v), Some(b)) = (&cost.varies, &cost.beyond) {
                source.push_str(&format!(
                    "; not constant: {} per connection up to {}, {} over {} to {}, the figure used beyond the ramp: measure closer to the count you will run",
                    bytes(v.lower_bytes.max(0.0) as u64),
                    group(v.lower_range[1]),
                    bytes(b.bytes_per_connection.max(0.0) as u64),
                    group(b.range[0]),
                    group(b.range[1]),
                ));
            }
            (slope.round().max(1.0) as u64, source, base)
        }
        (None, Some(b)) => (b, "given with --cost-per-conn".to_string(), None),
        (None, None) => match profile.params.bytes_per_connection {
            Some(b) => (
                b,
                format!("bytes_per_connection of profile {}", profile.name),
                None,
            ),
            None => return Ok(None),
        },
    };
    let cgroup = match args.pid {
        Some(pid) => cgroup_now(ctx, pid, bytes_per_connection, baseline)?,
        None => None,
    };
    Ok(Some(MeasuredCost {
        bytes_per_connection,
        source,
        cgroup,
    }))
}

/// A cgroup directory and its charge at no connections, page cache left out, as the report's
/// ramp measured it.
type Baseline = Option<(String, u64)>;

/// The fit, the URL, and the cgroup's baseline.
fn from_report(file: &std::path::Path) -> anyhow::Result<(CostFit, String, Baseline)> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--cost-from {}: {e}", file.display()))?;
    let r: Report = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "--cost-from {}: not a tune load JSON report ({e}): save one with tune load URL --server-pid PID --format json > FILE",
            file.display()
        )
    })?;
    let server = r.server.ok_or_else(|| {
        anyhow::anyhow!(
            "--cost-from {}: the report watched no server: run tune load with --server-pid PID or --server-cgroup DIR",
            file.display()
        )
    })?;
    let cost = server.cost.ok_or_else(|| {
        anyhow::anyhow!(
            "--cost-from {}: the report has no cost per connection ({} samples; a fit needs 3): run tune load with --steps 3 or more",
            file.display(),
            server.samples.len()
        )
    })?;
    // The charge at no connections on the line the report projects beyond its ramp (through
    // its top); an older report without that line: the ramp's first sample.
    let at_zero = cost.beyond.as_ref().map(|b| b.base_bytes.max(0.0) as u64);
    let base = server.cgroup.and_then(|cg| {
        let first = server
            .samples
            .first()
            .and_then(|s| Some(s.cgroup_charge?.saturating_sub(s.cgroup_file.unwrap_or(0))));
        Some((cg, at_zero.or(first)?))
    });
    Ok((cost, r.url, base))
}

/// The server's memory cgroup now: its limit, and its charge at no connections. That is the
/// charge now less page cache less what the connections open now cost, or the report's
/// baseline when it measured this cgroup at a lower one (memory a server freed but kept, as
/// Python's and glibc's allocators do, is reused by new connections).
fn cgroup_now(
    ctx: &Context,
    pid: u32,
    cost: u64,
    baseline: Baseline,
) -> anyhow::Result<Option<CgroupNow>> {
    let host = Host::new(&ctx.root);
    let Some(at) = host
        .memory_cgroup_of(pid)
        .map_err(|e| anyhow::anyhow!("--pid {pid}: {e}"))?
    else {
        return Ok(None);
    };
    let Some(level) = host.memory_level(&at) else {
        return Ok(None);
    };
    let Some(limit) = level.effective_limit() else {
        return Ok(None);
    };
    let charge = level.usage.unwrap_or(0);
    let file = host.memory_file_pages(&at).unwrap_or(0);
    // The listener is one socket; every other is a connection.
    let conns = host
        .process(Some(pid))
        .socket_count()
        .unwrap_or(0)
        .saturating_sub(1);
    let now = charge
        .saturating_sub(file)
        .saturating_sub(conns.saturating_mul(cost));
    let dir = at.dir();
    let (base, base_note) = match baseline {
        Some((cg, b)) if cg == dir && b < now => (
            b,
            format!(
                "as the ramp measured it (its top's charge less its connections at that cost); {} charged now without page cache, memory the server freed and keeps for reuse",
                bytes(charge.saturating_sub(file))
            ),
        ),
        _ => (
            now,
            format!(
                "{} charged now − {} page cache − {} connections open",
                bytes(charge),
                bytes(file),
                group(conns)
            ),
        ),
    };
    Ok(Some(CgroupNow {
        path: dir,
        limit,
        base,
        base_note,
    }))
}
