//! The host and process readings a verify run takes at its baseline and at its peak, and the
//! server's typed counters at the peak.

use embedded_server::loadgen::LoadSnapshot;
use embedded_server::server::Snapshot;

use super::diagnose::ServerSide;
use super::measure::{self, Conntrack, Mem, Rss, Sock};
use super::rig::Rig;
use crate::kernel::{netstat::Netstat, slabinfo::SlabCache};
use crate::root::Root;

/// The host-wide readings, taken together.
#[derive(Debug, Clone)]
pub struct HostSample {
    pub mem: Mem,
    pub slab: Option<Vec<SlabCache>>,
    pub sock: Option<Sock>,
    pub net: Netstat,
    pub ct: Conntrack,
    /// tune's own memory and pids cgroups (the workers are in them too).
    pub cgroups: Option<crate::kernel::cgroup::Cgroups>,
}

impl HostSample {
    pub fn take(root: &Root) -> anyhow::Result<HostSample> {
        Ok(HostSample {
            mem: measure::mem(root)?,
            slab: measure::slab(root),
            sock: measure::sockstat(root),
            net: measure::netstat(root),
            ct: measure::conntrack(root),
            cgroups: crate::container::own_cgroups(root),
        })
    }
}

/// Resident memory of the server workers and of the client processes.
#[derive(Debug, Clone, Copy)]
pub struct ProcessRss {
    pub server: Rss,
    /// `None` in external mode.
    pub clients: Option<Rss>,
}

impl ProcessRss {
    pub fn take(root: &Root, rig: &Rig) -> ProcessRss {
        ProcessRss {
            server: rig
                .server
                .as_ref()
                .map_or_else(Rss::default, |s| measure::rss(root, &s.pids())),
            clients: rig
                .clients
                .as_ref()
                .map(|c| measure::rss(root, &c.gen.pids())),
        }
    }
}

/// Everything read at the peak of the connect phase.
#[derive(Debug, Clone)]
pub struct Peak {
    pub host: HostSample,
    pub rss: ProcessRss,
    pub server: Snapshot,
    pub load: Option<LoadSnapshot>,
    /// The server's workers as their counters show them, for the diagnosis.
    pub server_side: ServerSide,
    /// Websockets open: the clients' count, the server's in external mode.
    pub reached: u64,
}

impl Peak {
    pub fn take(root: &Root, rig: &Rig, backlog: i32) -> anyhow::Result<Peak> {
        let host = HostSample::take(root)?;
        let rss = ProcessRss::take(root, rig);
        let load = rig.load_snapshot();
        let (server, workers) = match &rig.server {
            Some(s) => (s.snapshot(), s.worker_gauges()),
            None => (Snapshot::default(), Vec::new()),
        };
        let server_side = ServerSide::from_counters(&server, &workers, backlog.max(0) as u64);
        let reached = load.as_ref().map_or(server.websockets_open, |l| l.open);
        Ok(Peak {
            host,
            rss,
            server,
            load,
            server_side,
            reached,
        })
    }
}

/// The counts at the end of the hold, before the teardown.
#[derive(Debug, Clone, Default)]
pub struct AfterHold {
    pub load: Option<LoadSnapshot>,
    pub server_open: u64,
}

impl AfterHold {
    /// The counts now, at the end of the hold.
    pub fn take(rig: &Rig) -> Self {
        Self {
            load: rig.load_snapshot(),
            server_open: rig
                .server
                .as_ref()
                .map_or(0, |s| s.snapshot().websockets_open),
        }
    }
}
