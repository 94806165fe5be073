//! The prepare phase: predict from the capacity model, start the server and the load
//! generator, and take the baseline the run's figures are measured from.

use std::net::SocketAddr;
use std::time::Duration;

use embedded_server::loadgen::LoadGen;
use embedded_server::server::Supervisor;

use super::connect::Watch;
use super::plan::{self, VerifyPlan};
use super::progress::Progress;
use super::report::Prediction;
use super::rig::{Clients, Rig};
use super::sample::{HostSample, ProcessRss};
use crate::capacity::{self};
use crate::launch;
use crate::root::Root;
use crate::units::group;
use crate::values::{Input, Suggest};

/// Time the processes get to settle before the baseline is read.
const SETTLE: Duration = Duration::from_millis(200);

/// The capacity model's answer, in the report's terms, with the server workers' own cap.
pub fn predict(
    cap: &capacity::Capacity,
    kernel_per_socket: u64,
    plan: &VerifyPlan,
    progress: &Progress,
) -> Prediction {
    let mut pred = Prediction {
        per_process: cap.per_process.connections,
        per_host: cap.per_host.connections,
        binding_limit: cap.per_host.limit.name().to_string(),
        meets_target: cap.meets_target,
        processes_needed: cap.processes_needed,
        source_addresses_needed: cap.source_addresses_needed,
        kernel_bytes_per_connection: kernel_per_socket * cap.sockets_per_connection,
        per_server_worker: None,
        summary: cap.summary(),
    };
    // The per-worker figure is said once, below, with this run's backlog.
    for line in pred
        .summary
        .iter()
        .filter(|l| !l.starts_with("per tune serve worker"))
    {
        progress.say(&format!("predicted {line}"));
    }
    // The server side's own cap per process: a worker keeps an fd reserve free so that it can
    // take its accept queue when it stops listening at its cap.
    if let Ok((_, hard)) = embedded_server::sys::rlimit::nofile() {
        let per_worker = embedded_server::server::per_worker_capacity(
            hard,
            plan.server.limits.fd_reserve_in_effect(),
        );
        pred.per_server_worker = Some(per_worker);
        progress.say(&format!(
            "predicted per tune serve worker: {} (RLIMIT_NOFILE {} less {} fds kept to drain the accept queue and the worker's own fds)",
            group(per_worker),
            group(hard),
            group(hard - per_worker)
        ));
    }
    pred
}

/// What the run started from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub listen: SocketAddr,
    pub floor: u64,
    pub host: HostSample,
    pub rss: ProcessRss,
    pub sources: String,
    pub source_count: u64,
    pub client_processes: u64,
    /// The load generator connects over IPv6 (fixes name IPv6 sources then).
    pub target_ipv6: bool,
    /// Cores the run's processes share (what handshake CPU is weighed against).
    pub cores: u64,
}

/// Starts the server and (unless external) the load generator, says what runs, and takes the
/// baseline. Fails before anything starts when the memory floor is impossible.
pub fn prepare(
    root: &Root,
    plan: &VerifyPlan,
    progress: &Progress,
) -> anyhow::Result<(Rig, Prepared)> {
    let floor = plan::memory_floor(plan.memory_floor, super::measure::mem(root)?.total)?;
    let signals = Rig::signals()?;
    let sup = Supervisor::start(&plan.server, &mut launch::worker_command)?;
    let listen = sup.local_addr();
    progress.say(&format!(
        "listening on {listen} with {} server workers",
        sup.workers()
    ));
    let clients = if plan.external {
        None
    } else {
        let mut target =
            plan::target_of(listen, plan.load.sources.as_ref().and_then(|s| s.first()));
        target.tls = plan.server.tls.is_some();
        let cfg = plan::load_config(root, target, plan.target, &plan.load)?;

        let gen = LoadGen::start(&cfg, &mut launch::load_worker_command)?;
        Some(Clients { gen, cfg })
    };
    let rig = Rig {
        server: Some(sup),
        clients,
        signals,
    };
    match &rig.clients {
        Some(c) => {
            if let Some(line) = plan::taken_from_open_prefix(&plan.load, &c.cfg) {
                progress.say(&line);
            }
            progress.say(&format!(
                "{} client processes, sources: {}",
                c.cfg.processes,
                rig.sources()
            ))
        }
        None => progress.say(&format!(
            "waiting for {} connections from other hosts: tune load ws://{listen}/ {} (per host)",
            group(plan.target),
            Suggest::set(Input::Conns, "N")
        )),
    }
    std::thread::sleep(SETTLE);
    let prepared = Prepared {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        listen,
        floor,
        host: HostSample::take(root)?,
        rss: ProcessRss::take(root, &rig),
        sources: rig.sources(),
        source_count: rig.source_count(),
        client_processes: rig.client_processes(),
        target_ipv6: rig
            .clients
            .as_ref()
            .is_some_and(|c| c.cfg.target.addr.is_ipv6()),
    };
    Ok((rig, prepared))
}

/// The memory watchdog for the connect phase, from the baseline: it goes by the predicted
/// kernel bytes per connection until enough are open to measure, and allows for the connects
/// that may be in flight at once and the rate a step may open at.
pub fn watch(plan: &VerifyPlan, pred: &Prediction, prepared: &Prepared, rig: &Rig) -> Watch {
    let in_flight_cap = rig
        .clients
        .as_ref()
        .map_or(0, |c| (c.cfg.concurrency as u64).min(plan.target));
    Watch::new(
        plan.target,
        prepared.floor,
        prepared.host.mem,
        pred.kernel_bytes_per_connection.max(1) as f64,
        in_flight_cap,
        plan.load.rate,
    )
}
