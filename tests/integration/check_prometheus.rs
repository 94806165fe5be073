//! `tune check --format prometheus` read by its real consumers: Debian's prometheus-node-exporter serves it from its textfile directory, the prometheus_client parser (PyPI) parses the scrape, promtool checks and unit-tests the shipped alert rules.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

fn tune() -> crate::support::Tune {
    let mut c = crate::support::tune();
    c.env("NO_COLOR", "1").timeout(TIMEOUT);
    c
}

/// A missing tool skips the test visibly; under TUNE_TEST_STRICT=1 (scripts/test-all) it fails.
fn skip(why: &str) {
    if std::env::var("TUNE_TEST_STRICT").as_deref() == Ok("1") {
        panic!("{why} (TUNE_TEST_STRICT=1: a skip is a failure; scripts/test-all installs it)");
    }
    eprintln!("SKIPPED: {why}");
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

pub(crate) fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus")
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool_passes("tune-alerts.yml", "tune-alerts.test.yml");
}

/// `promtool check rules RULES` and `promtool test rules TESTS` in examples/prometheus succeed.
pub(crate) fn promtool_passes(rules: &str, tests: &str) {
    let Some(promtool) = which("promtool") else {
        return skip("promtool not found (Debian package prometheus)");
    };
    for args in [
        &["check", "rules", rules][..],
        &["test", "rules", tests][..],
    ] {
        let out = StdCommand::new(&promtool)
            .args(args)
            .current_dir(examples())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "promtool {args:?}:\n{text}");
    }
}

/// node_exporter in its own process group, killed with the group when dropped.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// The TCP port the process listens on: its socket inodes matched against the LISTEN lines of
/// its /proc/PID/net/tcp (it listens on 127.0.0.1:0, so the kernel chose the port).
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // sl local_address rem_address st ... inode (field 9); st 0A is LISTEN.
        (f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.contains(*i)))
            .then(|| u16::from_str_radix(f[1].split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

fn start_exporter(bin: &Path, dir: &Path) -> (Exporter, u16) {
    let child = StdCommand::new(bin)
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--collector.disable-defaults",
            "--collector.textfile",
        ])
        .arg(format!("--collector.textfile.directory={}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let exporter = Exporter(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(port) = listening_port(exporter.0.id()) {
            return (exporter, port);
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parses the scrape at `url` and the file `path` with prometheus_client's text parser and prints
/// both as JSON: {"scrape": {family: [[labels, value]]}, "file": {...}}.
const PARSE: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
def parse(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append([dict(s.labels), repr(float(s.value))])
    return out
scrape = urllib.request.urlopen(sys.argv[1], timeout=20).read().decode()
print(json.dumps({"scrape": parse(scrape), "file": parse(open(sys.argv[2]).read())}))
"#;

type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, String)>>;

#[test]
fn node_exporter_serves_the_check_from_its_textfile_directory_and_it_parses() {
    let Some(exporter_bin) = which("prometheus-node-exporter").or_else(|| which("node_exporter"))
    else {
        return skip(
            "prometheus-node-exporter not found (Debian package prometheus-node-exporter)",
        );
    };
    let Ok(python) = std::env::var("TUNE_TEST_PYTHON") else {
        return skip(
            "TUNE_TEST_PYTHON is not set (scripts/test-all makes .venv with prometheus_client)",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let out = tune()
        .args(["check", "--target", "10000", "--format", "prometheus"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prom = dir.path().join("tune.prom");
    std::fs::write(&prom, &out.stdout).unwrap();

    let (exporter, port) = start_exporter(&exporter_bin, dir.path());
    let parsed = StdCommand::new(&python)
        .args(["-c", PARSE, &format!("http://127.0.0.1:{port}/metrics")])
        .arg(&prom)
        .output()
        .unwrap();
    drop(exporter);
    assert!(
        parsed.status.success(),
        "parser: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let v: BTreeMap<String, Samples> = serde_json::from_slice(&parsed.stdout).unwrap();
    let (scrape, file) = (&v["scrape"], &v["file"]);

    // node_exporter read the file without error and serves every sample of it unchanged.
    assert_eq!(
        scrape["node_textfile_scrape_error"],
        vec![(BTreeMap::new(), "0.0".to_string())],
        "node_exporter could not parse tune.prom"
    );
    for (name, samples) in file {
        let served: BTreeSet<_> = scrape.get(name).into_iter().flatten().collect();
        for s in samples {
            assert!(served.contains(s), "{name} {s:?} not served: {served:?}");
        }
    }

    // What the file says.
    let one = |name: &str| -> &Vec<(BTreeMap<String, String>, String)> {
        file.get(name)
            .unwrap_or_else(|| panic!("{name} missing: {:?}", file.keys()))
    };
    assert_eq!(one("tune_target_connections")[0].1, "10000.0");
    assert_eq!(one("tune_target_connections")[0].0["role"], "server");
    let scopes: BTreeSet<&str> = one("tune_capacity_connections")
        .iter()
        .map(|(l, _)| {
            assert!(!l["limit"].is_empty(), "binding limit as a label: {l:?}");
            l["scope"].as_str()
        })
        .collect();
    assert_eq!(scopes, BTreeSet::from(["host", "process"]));
    let mut per_knob: BTreeMap<&str, f64> = BTreeMap::new();
    for (l, v) in one("tune_knob_status") {
        *per_knob.entry(l["knob"].as_str()).or_default() += v.parse::<f64>().unwrap();
    }
    assert!(per_knob.len() > 10, "{per_knob:?}");
    assert!(
        per_knob.values().all(|n| *n == 1.0),
        "each knob has exactly one status: {per_knob:?}"
    );
    // Units are in the names, and a knob's required value sits beside its current one.
    let nofile = one("tune_knob_required_fds")
        .iter()
        .find(|(l, _)| l["knob"] == "rlimit.nofile.hard")
        .expect("required nofile");
    assert_eq!(nofile.1, "11011.0", "(10,000 + 10) x 1.1");
    assert!(file.contains_key("tune_knob_current_fds"));
    assert!(file
        .keys()
        .any(|k| k.starts_with("tune_knob_current_bytes")));
    for name in [
        "tune_info",
        "tune_capacity_meets_target",
        "tune_drift",
        "tune_check_exit_code",
    ] {
        one(name);
    }
    assert_eq!(
        one("tune_check_exit_code")[0].1,
        format!("{:?}", f64::from(out.status.code().unwrap())),
    );
}
