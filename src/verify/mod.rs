//! `tune serve --verify N` and `tune load` as phases: **prepare** (predict, start the server
//! and the load generator, take the baseline) → **connect** (open the connections under the
//! memory watchdog) → **hold** → **echo** (one message per connection) → **teardown** (close at
//! the close rate, stop every process). Each phase is a function returning a typed record;
//! [`assemble`] (pure) turns the records into the report and [`diagnose`] (pure) names the
//! limit. The orchestration, which calls the phases in order, is `cmd/verify.rs` and
//! `cmd/load.rs`; [`plan`] holds what the command line resolves to, [`measure`] reads the
//! host, [`report`] and [`load_report`] render the results.

pub mod assemble;
pub mod cgroup_room;
pub mod clock;
pub mod connect;
pub mod cost;
pub mod diagnose;
pub mod died;
pub mod hold;
pub mod load_report;
pub mod measure;
pub mod other_activity;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod reclaim;
pub mod report;
pub mod rig;
pub mod sample;
pub mod server_watch;
pub mod storm;
pub mod teardown;
pub mod tls_cost;
pub mod watchdog;

pub use assemble::{assemble, KnobFacts, Records};
pub use plan::{LoadOptions, VerifyPlan};
pub use progress::Progress;

use crate::knobs::KnobId;

impl KnobFacts {
    /// The values the diagnosis quotes, from check's observation of the host.
    pub fn from_observation(obs: &crate::knobs::Observation) -> KnobFacts {
        KnobFacts {
            file_max: obs.int(KnobId::FileMax),
            somaxconn: obs.int(KnobId::Somaxconn),
            tcp_mem: match obs.get(KnobId::TcpMem) {
                Some(crate::knobs::Value::Triple(t)) => Some(*t),
                _ => None,
            },
            syncookies: obs.int(crate::knobs::KnobId::TcpSyncookies),
        }
    }
}
