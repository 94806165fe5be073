//! Open fds per process and the port tables, read through [`Host`]: what `tune top` samples every second, chosen for cost.
//!
//! Counting a process's fds by listing `/proc/PID/fd` costs one directory entry per fd (a
//! million at 1M sockets, every second). Since Linux 6.2 `stat` on that directory reports the
//! count as its size (`proc_fd_getattr`, fs/proc/fd.c: a bitmap weight over the fd table), so
//! one `stat` per process answers. On an older kernel (size 0) and on captured trees (not
//! procfs) the entries are listed instead.

use super::host::{Host, HostError};
use super::tcp_table::{self, PortCounter, PortUse};

/// The TCP tables whose sockets hold local ports.
pub const TCP_TABLES: [&str; 2] = ["proc/net/tcp", "proc/net/tcp6"];

/// How a process's fd count was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdSource {
    /// `stat` of /proc/PID/fd: one syscall, whatever the count.
    StatSize,
    /// The entries of /proc/PID/fd listed (older kernels, captured trees).
    Listed,
}

impl Host<'_> {
    /// Every process id under `proc/`, ascending.
    pub fn pids(&self) -> Result<Vec<u32>, HostError> {
        let mut pids: Vec<u32> = self
            .root()
            .list_dir("proc")?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Whether fd counts come from `stat` sizes here (the live procfs).
    pub fn fd_source(&self) -> FdSource {
        if self.root().is_procfs("proc") {
            FdSource::StatSize
        } else {
            FdSource::Listed
        }
    }

    /// Open fds of `pid` (`None`: tune's own), the cheapest honest way `source` allows.
    pub fn fd_count(&self, pid: Option<u32>, source: FdSource) -> Result<u64, HostError> {
        let dir = self.process(pid).file("fd");
        if source == FdSource::StatSize {
            let n = self.root().size(&dir)?;
            if n > 0 {
                return Ok(n);
            }
        }
        Ok(self.root().list_dir(&dir)?.len() as u64)
    }

    /// The command name of `pid` (`comm`), trimmed.
    pub fn comm(&self, pid: Option<u32>) -> Result<String, HostError> {
        Ok(self
            .root()
            .read(&self.process(pid).file("comm"))?
            .trim()
            .to_string())
    }

    /// Ports of `range` in use per (source, destination) over the TCP tables that exist; `None`
    /// when neither does.
    pub fn port_use(&self, range: [u64; 2]) -> Result<Option<PortUse>, HostError> {
        let mut acc = PortCounter::default();
        let mut any = false;
        for table in TCP_TABLES {
            let text = match self.root().read(table) {
                Ok(t) => t,
                Err(e) => {
                    let e = HostError::from(e);
                    if e.is_absent() {
                        continue;
                    }
                    return Err(e);
                }
            };
            any = true;
            tcp_table::count_ports(&text, range, &mut acc).map_err(|source| {
                HostError::Malformed {
                    path: self.root().path(table),
                    source,
                }
            })?;
        }
        Ok(any.then(|| acc.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;

    #[test]
    fn counts_the_live_processes_fds_by_stat_and_by_listing_alike() {
        let root = Root::host();
        let h = Host::new(&root);
        assert_eq!(h.fd_source(), FdSource::StatSize);
        // A child that sits still: this test process's own fds move while the other unit tests
        // run in their threads, so counting them twice would race.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Some(child.id());
        let by_stat = h.fd_count(pid, FdSource::StatSize);
        let listed = h.fd_count(pid, FdSource::Listed);
        let _ = child.kill();
        let _ = child.wait();
        let (by_stat, listed) = (by_stat.unwrap(), listed.unwrap());
        // stdin, stdout and stderr at least; listing opens its directory fd in this process.
        assert!(by_stat >= 3 && listed == by_stat, "{by_stat} {listed}");
        let me = Some(std::process::id());
        assert!(h.pids().unwrap().contains(&std::process::id()));
        assert!(!h.comm(me).unwrap().is_empty());
        assert!(h.port_use([1, 65535]).unwrap().is_some());
    }

    #[test]
    fn a_captured_tree_lists_and_names_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        for f in ["0", "1", "2"] {
            root.write_atomic(&format!("proc/42/fd/{f}"), b"", 0o644)
                .unwrap();
        }
        let h = Host::new(&root);
        assert_eq!(h.fd_source(), FdSource::Listed);
        assert_eq!(h.pids().unwrap(), vec![42]);
        assert_eq!(h.fd_count(Some(42), FdSource::Listed).unwrap(), 3);
        assert_eq!(h.port_use([1, 2]).unwrap(), None);
        let e = h.comm(Some(42)).unwrap_err().to_string();
        assert!(e.contains("proc/42/comm"), "{e}");
    }
}
