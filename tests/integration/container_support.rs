//! Containers built from their kernel parts for the tests, the way runtimes build them: a child
//! memory cgroup under the test process's own (removed on drop, also when the test fails),
//! network namespaces and user namespaces through `unshare`, and the binary run in them through
//! `support::command` (time limit, process group killed). A part that cannot be built here is a
//! visible skip, and a failure under TUNE_TEST_STRICT=1.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use super::support::{command, tune_exe, Tune};

/// No memory limit (the kernel stores it as its page counter's maximum).
pub const NO_LIMIT: u64 = u64::MAX;

/// The object size of slab cache `name` in /proc/slabinfo (a kernel fact of this host).
pub fn slab_object_size(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/slabinfo").expect("root reads /proc/slabinfo");
    let caches = tune::kernel::slabinfo::parse(&text).unwrap();
    caches
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} cache in /proc/slabinfo"))
        .objsize
}

/// Says that a test was skipped and why; under TUNE_TEST_STRICT=1 the skip is a failure.
pub fn skip(test: &str, why: &str) {
    if std::env::var("TUNE_TEST_STRICT").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run here and TUNE_TEST_STRICT=1: {why}");
    }
    let _ = writeln!(std::io::stderr(), "\n{test}: SKIPPED: {why}\n");
}

/// A child memory cgroup (v1) under this process's own, limited to `limit` bytes; removed on drop.
pub struct MemCg {
    pub dir: PathBuf,
}

impl MemCg {
    pub fn new(name: &str, limit: u64) -> Result<MemCg, String> {
        let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let ours = text
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, c, path) = (p.next()?, p.next()?, p.next()?);
                c.split(',')
                    .any(|c| c == "memory")
                    .then(|| path.to_string())
            })
            .ok_or("no v1 memory controller in /proc/self/cgroup")?;
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/memory{}/tune-test-{name}-{}",
            ours.trim_end_matches('/'),
            std::process::id()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = MemCg { dir };
        std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit.to_string())
            .map_err(|e| format!("memory.limit_in_bytes: {e}"))?;
        Ok(cg)
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// The most kernel memory (slab objects, page tables, stacks) charged to this cgroup at
    /// once since it was made: memory.kmem.max_usage_in_bytes. Only its own processes move it.
    pub fn kmem_peak(&self) -> u64 {
        self.read("memory.kmem.max_usage_in_bytes")
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "no memory.kmem.max_usage_in_bytes in {}",
                    self.dir.display()
                )
            })
    }

    /// oom_kill of memory.oom_control.
    pub fn oom_kills(&self) -> u64 {
        self.read("memory.oom_control")
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `tune ARGS` run inside this cgroup (a shell moves itself in, then execs tune).
    pub fn tune(&self, args: &[&str]) -> Tune {
        let mut c = self.run(tune_exe());
        c.args(args).env_remove("TUNE_ROOT");
        c
    }

    /// `program` run inside this cgroup: a shell moves itself in, then execs it (the pid of
    /// the started command is the program's). Add its arguments to the returned command.
    pub fn run(&self, program: &str) -> Tune {
        let procs = self.dir.join("cgroup.procs");
        let mut c = command("sh");
        c.args([
            "-c",
            r#"echo $$ > "$1"; shift; exec "$@""#,
            "sh",
            procs.to_str().unwrap(),
            program,
        ]);
        c
    }
}

impl Drop for MemCg {
    fn drop(&mut self) {
        for _ in 0..40 {
            let procs = self.read("cgroup.procs");
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("could not remove the test cgroup {}", self.dir.display());
    }
}

/// `tune ARGS` in a fresh network namespace where `setup` (shell lines: sysctl -w, nft) ran
/// first with lo up; the namespace dies with the process.
pub fn in_netns(setup: &str, args: &[&str]) -> Tune {
    let mut c = command("unshare");
    c.args([
        "-n",
        "--",
        "sh",
        "-c",
        &format!("set -e\nip link set lo up\n{setup}\nexec \"$0\" \"$@\""),
        tune_exe(),
    ])
    .args(args)
    .env_remove("TUNE_ROOT");
    c
}

/// Runs and parses stdout as JSON: (exit code, JSON, stderr).
pub fn run_json(mut cmd: Tune) -> (i32, serde_json::Value, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let json = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&stdout)
        )
    });
    (status.code().unwrap_or(-1), json, stderr)
}

/// Why network namespaces with nft cannot be used here, if they cannot.
pub fn nft_unavailable() -> Option<String> {
    match Command::new("unshare")
        .args(["-n", "nft", "add", "table", "inet", "tune_probe"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "nft cannot add a table in a fresh network namespace: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!(
            "unshare/nft cannot run ({e}); scripts/test-all installs nftables"
        )),
    }
}

/// The nft lines that make conntrack track the namespace's connections.
pub const CT_RULE: &str = "nft add table inet tune_ct\n\
    nft add chain inet tune_ct out '{ type filter hook output priority 0; policy accept; }'\n\
    nft add rule inet tune_ct out ct state new,established accept";
