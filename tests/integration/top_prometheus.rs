//! `tune top --listen` scraped by a real Prometheus (Debian's) during a 20,000-connection verify, in a network namespace the test makes, with a `ct` rule so conntrack tracks it; the shipped alert rules are evaluated there and checked and unit-tested by promtool.
//!
//! What this can and cannot show: nf_conntrack_max is read-only outside the initial network
//! namespace (host facts), so the namespace's table cannot be given a small max. Its count is
//! its own, though, and the max it is held to is the host's. The conntrack rule fires on the
//! prediction (`predict_linear` over the ramp reaches the max within its hour), and the
//! exhaustion rule on tune top's time to exhaustion; the table is filled with UDP entries to
//! within twice the verify's entries of its max first, so that the latter does not need a
//! fast host, and is not driven to full.
//! The rules' `for:` durations (minutes) are cut to 0 s in the copy Prometheus loads, so that
//! they fire within the test: the expressions are the shipped ones, and the `for:` clauses
//! are what `promtool test rules` covers.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::check_prometheus::{examples, which};
use crate::support::{command, tune_exe, Running};

const CONNECTIONS: u64 = 20_000;
/// Paced so the ramp spans several 1 s scrapes (10 s).
const RATE: u64 = 2_000;
const CT: &str = "/proc/sys/net/netfilter";

fn skip(why: &str) {
    crate::support::skip("top_prometheus", why);
}

#[test]
fn the_top_alert_rules_pass_promtool_check_and_their_unit_tests() {
    crate::check_prometheus::promtool_passes("tune-top-alerts.yml", "tune-top-alerts.test.yml");
}

/// A network namespace held open by a `sleep`, with loopback up, a `ct` rule, and its
/// conntrack table filled with `prefill` UDP entries (kept 10 minutes); it dies with the
/// process group (the rule and the entries with it).
struct Netns(Running);

/// Fills the namespace's conntrack table with argv[1] entries: one datagram to each of that
/// many (127.0.x.1, port) destinations, each a new tracked flow.
const PREFILL: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = int(sys.argv[1])
for i in range(n):
    s.sendto(b"", ("127.0.%d.1" % (1 + i // 65535), 1 + i % 65535))
"#;

impl Netns {
    fn new(prefill: u64) -> Netns {
        let script = format!(
            "set -e\n\
             ip link set lo up\n\
             nft add table inet tune_top\n\
             nft add chain inet tune_top out '{{ type filter hook output priority 0; policy accept; }}'\n\
             nft add rule inet tune_top out ct state new,established accept\n\
             sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600\n\
             python3 -c '{PREFILL}' {prefill}\n\
             echo ready\n\
             exec sleep 600"
        );
        let mut holder = command("unshare")
            .args(["-n", "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the namespace was not set up");
        Netns(holder)
    }

    /// `program args` run inside the namespace.
    fn command(&self, program: &str) -> crate::support::Tune {
        let mut c = command("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.0.id()))
            .args(["--", program]);
        c.env_remove("TUNE_ROOT").env_remove("NO_COLOR");
        c
    }

    /// Runs python3 `code args` inside the namespace; its stdout.
    fn python(&self, code: &str, args: &[&str]) -> Result<String, String> {
        let out = self
            .command("python3")
            .args(["-c", code])
            .args(args)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

const FREE_PORT: &str =
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])";
const QUERY: &str = r#"
import sys, urllib.parse, urllib.request
params = {"query": sys.argv[2]}
if len(sys.argv) > 3:
    params["time"] = sys.argv[3]
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode(params)
print(urllib.request.urlopen(url, timeout=10).read().decode())
"#;

/// An instant query's result vector (or the matrix of a range selector). `base` may end in
/// ` @TIME`: then the query is evaluated at that Unix time, so that queries run one after the
/// other see the same window (a range `[W]` slides with the query's time otherwise).
fn query(ns: &Netns, base: &str, q: &str) -> Vec<serde_json::Value> {
    let (url, at) = base
        .split_once(" @")
        .map_or((base, None), |(u, t)| (u, Some(t)));
    let mut args = vec![url, q];
    args.extend(at);
    let text = ns
        .python(QUERY, &args)
        .unwrap_or_else(|e| panic!("query {q}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].as_array().unwrap().clone()
}

/// The one value of an instant query, as f64.
fn scalar(ns: &Netns, base: &str, q: &str) -> f64 {
    let r = query(ns, base, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// The raw samples of a range selector's one series.
fn samples(ns: &Netns, base: &str, q: &str) -> Vec<f64> {
    let r = query(ns, base, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse().unwrap())
        .collect()
}

/// What the test needs, else why not.
fn afford() -> Result<u64, String> {
    for (tool, pkg) in [
        ("prometheus", "prometheus"),
        ("nft", "nftables"),
        ("nsenter", "util-linux"),
        ("python3", "python3"),
    ] {
        if which(tool).is_none() {
            return Err(format!("{tool} not found (Debian package {pkg})"));
        }
    }
    let max: u64 = std::fs::read_to_string(format!("{CT}/nf_conntrack_max"))
        .map_err(|_| {
            "nf_conntrack is not loaded and a test does not load modules on the host".to_string()
        })?
        .trim()
        .parse()
        .unwrap();
    if max < CONNECTIONS * 2 {
        return Err(format!(
            "nf_conntrack_max {max} is too small for a {CONNECTIONS} verify"
        ));
    }
    Ok(max)
}

#[test]
fn prometheus_scrapes_top_during_a_verify_and_the_conntrack_rule_fires() {
    let max = match afford() {
        Ok(m) => m,
        Err(why) => return skip(&why),
    };
    let dir = tempfile::tempdir().unwrap();
    // The table filled to within twice the verify's entries of its max before anything is
    // scraped: its 20,000 entries then take the headroom from 2x to 1x of them, and tune
    // top's time to exhaustion ((max - used) / rate over 10 s) falls under the rule's 5
    // minutes at any ramp faster than 40,000 / 300 s = 133 connections/s. Without it the
    // rule needed the host to hold ~870/s (262,144 / 300 s), which a busy host did not.
    let prefill = max - 2 * CONNECTIONS;
    let ns = Netns::new(prefill);

    // tune top in the namespace, on a port the kernel picks.
    let mut top = ns
        .command(tune_exe())
        .args(["top", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(top.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let target = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics\n"))
        .unwrap_or_else(|| panic!("no address on stderr: {line:?}"))
        .to_string();

    // Prometheus in the namespace, scraping every second, with the shipped rules (for: 0s).
    let rules = std::fs::read_to_string(examples().join("tune-top-alerts.yml")).unwrap();
    let rules: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: tune\n    static_configs: [{{targets: ['{target}']}}]\n",
        dir.path().join("rules.yml").display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    // Port 0 is not taken by prometheus: bind one in the namespace, free it, hand it over.
    let port = ns.python(FREE_PORT, &[]).unwrap().trim().to_string();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = ns
        .command("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Prometheus is up and has scraped top at least twice (rates need two refreshes).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = ns
            .python(
                QUERY,
                &[
                    &base,
                    "sum(count_over_time(up{job=\"tune\"}[1m]) and up == 1)",
                ],
            )
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(str::to_string)
            })
            .and_then(|s| s.parse::<f64>().ok());
        if up.is_some_and(|n| n >= 3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape tune top within 60 s; its log:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let firing = "ALERTS{alertname=\"TuneConntrackFullWithin1h\",alertstate=\"firing\"}";
    assert!(
        query(&ns, &base, firing).is_empty(),
        "the rule fired before any connection"
    );
    let before = scalar(&ns, &base, "tune_tcp_sockets{state=\"inuse\"}");

    // The verify in the same namespace.
    let t = Instant::now();
    let out = ns
        .command(tune_exe())
        .args(["serve", "--listen", "127.0.0.1:0", "--verify"])
        .arg(CONNECTIONS.to_string())
        .args([
            "--rate",
            &RATE.to_string(),
            "--hold",
            "5",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let verify: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success(),
        "verify: {verify:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verify["reached"], CONNECTIONS);
    // Scrapes of the fall.
    std::thread::sleep(Duration::from_secs(4));
    let window = format!("{}s", t.elapsed().as_secs() + 10);
    // Every query from here on is evaluated at this one instant, over the same window: on a
    // busy host the queries take seconds each, and a sliding window once lost the peak
    // between the conntrack peak's query and the headroom's.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let base = format!("{base} @{at:.3}");

    // The socket count rose through the ramp (samples between empty and full), reached both
    // ends of 20,000 loopback pairs, and fell after the teardown.
    let inuse = samples(
        &ns,
        &base,
        &format!("tune_tcp_sockets{{state=\"inuse\"}}[{window}]"),
    );
    let peak = inuse.iter().copied().fold(0.0, f64::max);
    let full = (2 * CONNECTIONS) as f64;
    assert!(peak >= full, "peak {peak}: {inuse:?}");
    let at_peak = inuse.iter().position(|v| *v == peak).unwrap();
    assert!(
        inuse[..at_peak]
            .iter()
            .any(|v| *v > before + full * 0.05 && *v < full * 0.95),
        "no sample of the ramp: {inuse:?}"
    );
    let now = *inuse.last().unwrap();
    assert!(now < full * 0.05, "did not fall: {inuse:?}");

    // Conntrack: an entry per pair in the namespace's table, held to the host's max; the
    // headroom is what is left of that max.
    let ct_peak = scalar(
        &ns,
        &base,
        &format!("max_over_time(tune_limit_used{{limit=\"conntrack\"}}[{window}])"),
    );
    assert!(
        ct_peak >= (prefill + CONNECTIONS) as f64,
        "conntrack peak {ct_peak}, filled with {prefill} first"
    );
    assert_eq!(
        scalar(&ns, &base, "tune_limit_max{limit=\"conntrack\"}"),
        max as f64
    );
    let low = scalar(
        &ns,
        &base,
        &format!("min_over_time(tune_limit_headroom_ratio{{limit=\"conntrack\"}}[{window}])"),
    );
    let want = 1.0 - ct_peak / max as f64;
    // Both queries are evaluated at the same instant over the same scrapes, and each scrape's
    // headroom is (max - used) / max of its own used: the same figure but for float rounding.
    assert!(
        ((low - want) * max as f64).abs() < 1.0,
        "headroom {low}, want {want} (peak {ct_peak} of {max})"
    );

    // The rules fired: the prediction reaches the max within the hour, and tune top's own
    // time to exhaustion went under 5 minutes during the ramp.
    let fired = scalar(&ns, &base, &format!("max_over_time({firing}[{window}])"));
    assert_eq!(fired, 1.0);
    let soon = query(
        &ns,
        &base,
        &format!(
            "max_over_time(ALERTS{{alertname=\"TuneLimitExhaustedSoon\",alertstate=\"firing\",limit=\"conntrack\"}}[{window}])"
        ),
    );
    assert_eq!(
        soon.len(),
        1,
        "TuneLimitExhaustedSoon did not fire for conntrack"
    );
    let tte = scalar(
        &ns,
        &base,
        &format!("min_over_time(tune_limit_exhaustion_seconds{{limit=\"conntrack\"}}[{window}])"),
    );
    // At the fastest 10 s of the ramp tune top's rate was at least the verify's own average
    // (20,000 over its connect time, or over 10 s if it was faster), with at most 2 x 20,000
    // entries of headroom left: twice that time, for 1 s scrapes of a moving figure.
    let connect = verify["connect_seconds"].as_f64().unwrap().max(10.0);
    let slowest = CONNECTIONS as f64 / connect;
    let bound = 2.0 * (2 * CONNECTIONS) as f64 / slowest;
    assert!(
        tte > 0.0 && tte < bound,
        "time to exhaustion {tte} s; the verify opened {CONNECTIONS} in {connect} s into \
         {} entries of headroom",
        2 * CONNECTIONS
    );
    drop(top);
}
