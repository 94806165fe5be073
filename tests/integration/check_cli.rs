//! `tune check` and `tune explain` through the binary: live host, captured roots, formats, exit codes, bad input.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::support::tune;
use serde_json::Value as Json;

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/roots")
        .join(name)
}

fn read_fixture(root: &str, rel: &str) -> String {
    std::fs::read_to_string(fixture(root).join(rel)).unwrap()
}

fn int_in(root: &str, rel: &str) -> u64 {
    read_fixture(root, rel).trim().parse().unwrap()
}

/// The hard "Max open files" of a limits file.
fn hard_nofile(limits: &str) -> u64 {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().parse().unwrap()
}

fn check_json(root: Option<&str>, args: &[&str]) -> (Json, i32) {
    let mut c = tune();
    if let Some(r) = root {
        c.arg("--root").arg(fixture(r));
    }
    let out = c
        .arg("check")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let json: Json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    validate(&json);
    (json, code)
}

pub(crate) fn validate(json: &Json) {
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/check-schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(json)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "JSON does not match docs/check-schema.json: {errors:#?}"
    );
}

pub(crate) fn knob<'a>(json: &'a Json, name: &str) -> &'a Json {
    json["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == name)
        .unwrap()
}

#[test]
fn live_host_names_the_per_process_bottleneck_from_its_own_limit() {
    // The binary inherits this test's RLIMIT_NOFILE; the figure must follow from it.
    let hard = hard_nofile(&std::fs::read_to_string("/proc/self/limits").unwrap());
    let (json, code) = check_json(None, &["--profile", "1m"]);
    assert_eq!(knob(&json, "rlimit.nofile.hard")["current"], hard);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = u64::from_str_radix(
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim(),
        16,
    )
    .unwrap();
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // CAP_SYS_RESOURCE (bit 24) lets the hard limit rise to fs.nr_open
    let fds = if cap_eff & (1 << 24) != 0 {
        nr_open.max(hard)
    } else {
        hard
    };
    assert_eq!(json["capacity"]["per_process"]["connections"], fds - 10);
    if cap_eff & (1 << 24) == 0 {
        assert!(json["capacity"]["per_process"]["arithmetic"]
            .as_str()
            .unwrap()
            .contains("cannot be raised here (no CAP_SYS_RESOURCE)"));
    }
    assert_eq!(
        json["kernel"].as_str().unwrap(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .trim()
    );
    assert_eq!(code, json["summary"]["exit_code"].as_i64().unwrap() as i32);
    let out = tune().args(["check", "--profile", "1m"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("does not hold 1,000,000: bound by ")
            || first.starts_with("holds 1,000,000: bound by "),
        "the verdict comes first: {text}"
    );
    assert!(text.contains("per process "), "{text}");
    assert!(text.contains("per host "), "{text}");
    assert!(!text.contains('\x1b'), "colour when not on a terminal");
}

#[test]
fn captured_host_reports_that_trees_values() {
    let r = "linux-6.18-host";
    let (json, code) = check_json(Some(r), &["--profile", "1m"]);
    assert_eq!(
        json["kernel"],
        read_fixture(r, "proc/sys/kernel/osrelease").trim()
    );
    let tcp_mem: Vec<u64> = read_fixture(r, "proc/sys/net/ipv4/tcp_mem")
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(
        knob(&json, "net.ipv4.tcp_mem")["current"],
        serde_json::json!(tcp_mem)
    );
    // Short of the profile, but idle sockets hold no pages: it caps nothing at the target.
    assert_eq!(knob(&json, "net.ipv4.tcp_mem")["status"], "warn");
    assert!(knob(&json, "net.ipv4.tcp_mem")["note"]
        .as_str()
        .unwrap()
        .contains("caps nothing at 1,000,000"));
    assert_eq!(
        knob(&json, "fs.file-max")["current"],
        int_in(r, "proc/sys/fs/file-max")
    );
    let hard = hard_nofile(&read_fixture(r, "proc/self/limits"));
    let cap = &json["capacity"];
    assert_eq!(cap["per_process"]["connections"], hard - 10);
    assert_eq!(cap["per_process"]["limit"], "rlimit.nofile.hard");
    assert!(cap["per_process"]["arithmetic"]
        .as_str()
        .unwrap()
        .contains("cannot be raised here (no CAP_SYS_RESOURCE)"));
    // root with CAP_SYS_ADMIN, but without --pid fs.file-max is judged for a service without
    // it (issue 21): 2,466,186 binds before memory; conntrack idle
    assert_eq!(cap["per_host"]["limit"], "fs.file-max");
    assert!(json["credentials"]
        .as_str()
        .unwrap()
        .contains("tune itself, running with it, would be exempt"));
    let row = knob(&json, "rlimit.nofile.hard");
    assert_eq!(row["status"], "fail");
    assert!(row["fix_persistent"]
        .as_str()
        .unwrap()
        .starts_with("LimitNOFILE="));
    assert_eq!(
        knob(&json, "net.core.somaxconn")["fix_runtime"],
        "sysctl -w net.core.somaxconn=\"65535\""
    );
    assert_eq!(code, 1);
}

#[test]
fn edited_conntrack_tree_reports_its_own_bottleneck() {
    let r = "linux-6.18-conntrack-small";
    let (json, code) = check_json(Some(r), &["--profile", "1m"]);
    let max = int_in(r, "proc/sys/net/netfilter/nf_conntrack_max");
    let count = int_in(r, "proc/sys/net/netfilter/nf_conntrack_count");
    assert_eq!(
        knob(&json, "net.netfilter.nf_conntrack_max")["current"],
        max
    );
    assert_eq!(
        knob(&json, "net.netfilter.nf_conntrack_max")["status"],
        "fail"
    );
    assert_eq!(
        json["capacity"]["per_host"]["limit"],
        "net.netfilter.nf_conntrack_max"
    );
    assert_eq!(json["capacity"]["per_host"]["connections"], max - count);
    assert_eq!(json["capacity"]["meets_target"], false);
    assert_eq!(code, 1);
}

#[test]
fn namespace_tree_reports_host_wide_knobs_as_absent_not_zero() {
    let (json, _) = check_json(Some("linux-6.18-netns"), &["--profile", "1m"]);
    for name in [
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_max_orphans",
        "net.core.netdev_max_backlog",
    ] {
        let row = knob(&json, name);
        assert_eq!(row["status"], "absent", "{name}");
        assert!(row["current"].is_null(), "{name}");
        assert!(
            row["note"]
                .as_str()
                .unwrap()
                .contains("child network namespace"),
            "{name}: {}",
            row["note"]
        );
        assert!(row["fix_runtime"].is_null());
    }
    // The accept queue does not cap how many connections are held.
    assert_eq!(knob(&json, "net.core.somaxconn")["status"], "warn");
}

#[test]
fn junit_is_well_formed_with_one_case_per_knob() {
    let (json, _) = check_json(Some("linux-6.18-host"), &["--profile", "1m"]);
    let out = tune()
        .arg("--root")
        .arg(fixture("linux-6.18-host"))
        .args(["check", "--profile", "1m", "--format", "junit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8(out.stdout).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (Vec::new(), 0);
    loop {
        use quick_xml::events::Event;
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("malformed XML: {e}\n{xml}"))
        {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let name = e.try_get_attribute("name").unwrap().unwrap();
                cases.push(name.unescape_value().unwrap().into_owned());
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"failure" => failures += 1,
            Event::Eof => break,
            _ => {}
        }
    }
    let knobs = json["knobs"].as_array().unwrap();
    assert_eq!(cases.len(), knobs.len() + 1, "{cases:?}");
    for k in knobs {
        assert!(cases.iter().any(|c| c == k["knob"].as_str().unwrap()));
    }
    // One failure per failing knob, and the capacity case when the host does not hold the target.
    let capacity = usize::from(json["verdict"]["meets_target"] == false);
    assert_eq!(
        failures,
        json["summary"]["fail"].as_u64().unwrap() as usize + capacity,
        "{xml}"
    );
    assert!(xml.contains("does not hold 1,000,000: bound by "), "{xml}");
}

#[test]
fn exit_codes_strict_and_ignore() {
    let host = Some("linux-6.18-host");
    // 10 connections: everything holds
    let (json, code) = check_json(host, &["--target", "10"]);
    assert_eq!((code, json["summary"]["fail"].as_u64()), (0, Some(0)));
    // 2.5M loopback: fails; ignoring every knob turns fails into warnings; strict fails on them
    let (json, code) = check_json(host, &["--target", "2500000", "--role", "loopback"]);
    assert_eq!(code, 1);
    assert_eq!(json["profile"]["role"], "loopback");
    assert_eq!(json["capacity"]["sockets_per_connection"], 2);
    let (json, code) = check_json(
        host,
        &[
            "--target", "2500000", "--role", "loopback", "--ignore", "all",
        ],
    );
    assert_eq!((code, json["summary"]["fail"].as_u64()), (0, Some(0)));
    assert!(json["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["ignored"] == true));
    let (_, code) = check_json(
        host,
        &[
            "--target", "2500000", "--role", "loopback", "--ignore", "all", "--strict",
        ],
    );
    assert_eq!(code, 1);
    // ignoring one knob leaves the others failing
    let (json, code) = check_json(
        host,
        &[
            "--target",
            "2500000",
            "--ignore",
            "rlimit.nofile.hard,rlimit.nofile.soft",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(knob(&json, "rlimit.nofile.hard")["status"], "warn");
    assert_eq!(knob(&json, "fs.nr_open")["status"], "fail");
}

#[test]
fn bad_input_exits_2_with_a_clear_error() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["check", "--target", "10", "--ignore", "net.core.somaxconm"],
            "--ignore: unknown knob \"net.core.somaxconm\"; did you mean net.core.somaxconn?",
        ),
        (
            &["check", "--profile", "no-such"],
            "unknown profile \"no-such\"",
        ),
        (
            &["check", "--target", "10", "--pid", "999999999"],
            "--pid 999999999: no such process",
        ),
        (&["check", "--target", "0"], "above 0"),
        (
            &["explain", "somaxconm"],
            "did you mean net.core.somaxconn?",
        ),
        (
            &[
                "--root",
                "/nonexistent/tune-root",
                "check",
                "--target",
                "10",
            ],
            "/nonexistent/tune-root",
        ),
    ];
    for (args, expect) in cases {
        let out = tune().args(*args).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn pid_reads_another_process_limits() {
    // A child with lowered limits (lowering needs no privilege).
    let mut child = StdCommand::new("prlimit")
        .args(["--nofile=900:1800", "sleep", "30"])
        .spawn()
        .expect("prlimit from util-linux");
    let pid = child.id().to_string();
    // prlimit execs sleep: wait until the limits apply.
    let limits = format!("/proc/{pid}/limits");
    for _ in 0..100 {
        if std::fs::read_to_string(&limits).is_ok_and(|l| hard_nofile(&l) == 1800) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (json, code) = check_json(None, &["--target", "5000", "--pid", &pid]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(json["pid"], pid.parse::<u64>().unwrap());
    assert_eq!(knob(&json, "rlimit.nofile.hard")["current"], 1800);
    assert_eq!(knob(&json, "rlimit.nofile.soft")["current"], 900);
    assert_eq!(json["capacity"]["per_process"]["connections"], 1790);
    let hard = knob(&json, "rlimit.nofile.hard");
    assert_eq!(hard["status"], "fail");
    assert!(hard["fix_runtime"]
        .as_str()
        .unwrap()
        .contains(&format!("--pid {pid}")));
    assert_eq!(code, 1);
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let bin = assert_cmd::cargo::cargo_bin("tune");
    let root = fixture("linux-6.18-host");
    let cmd = format!(
        "{} --root {} check --target 10",
        bin.display(),
        root.display()
    );
    let run = |no_color: bool| {
        let mut c = crate::support::command("script");
        c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&c.output().expect("script from util-linux").stdout).into_owned()
    };
    let tty = run(false);
    assert!(tty.contains("per process"), "{tty}");
    assert!(tty.contains('\x1b'), "no colour on a terminal: {tty}");
    let plain = run(true);
    assert!(plain.contains("per process"), "{plain}");
    assert!(!plain.contains('\x1b'), "colour despite NO_COLOR: {plain}");
}

#[test]
fn explain_uses_the_registry() {
    let out = tune()
        .args(["explain", "net.core.somaxconn"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("ListenOverflows") && text.contains("sysctl.d"),
        "{text}"
    );
    let all = String::from_utf8(tune().args(["explain", "all"]).output().unwrap().stdout).unwrap();
    for k in tune::knobs::REGISTRY {
        assert!(
            all.contains(&format!("{}\n  what:", k.name)),
            "{} missing",
            k.name
        );
    }
}

/// Copies a captured root into a temp dir so a test can remove or edit files.
pub(crate) fn copy_root(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture(name), dir.path());
    dir
}

#[test]
fn without_slabinfo_the_documented_default_cost_is_used_and_said() {
    let dir = copy_root("linux-6.18-host");
    std::fs::remove_file(dir.path().join("proc/slabinfo")).unwrap();
    let out = tune()
        .arg("--root")
        .arg(dir.path())
        .args(["check", "--target", "1000", "--format", "json"])
        .output()
        .unwrap();
    let json: Json = serde_json::from_slice(&out.stdout).unwrap();
    validate(&json);
    let row = knob(&json, "memory.per-socket");
    assert_eq!(
        row["current"],
        tune::kernel::slabinfo::DEFAULT_BYTES_PER_SOCKET
    );
    assert!(
        row["note"].as_str().unwrap().contains("documented default"),
        "{}",
        row["note"]
    );
    let mem = &json["capacity"]["host_limits"][0]["arithmetic"];
    assert!(
        mem.as_str()
            .unwrap()
            .contains("5,120 B per socket (default"),
        "{mem}"
    );
    // with slabinfo, the cost comes from the captured caches
    let (json, _) = check_json(Some("linux-6.18-host"), &["--target", "1000"]);
    assert!(knob(&json, "memory.per-socket")["note"]
        .as_str()
        .unwrap()
        .starts_with("from /proc/slabinfo: TCP "));
}

/// The fuzzer's slabinfo (issue 11): check does not overflow; it names the file and line, and
/// plans with the documented default cost.
#[test]
fn an_absurd_slabinfo_is_refused_naming_the_file() {
    let dir = copy_root("linux-6.18-host");
    std::fs::write(
        dir.path().join("proc/slabinfo"),
        "slabinfo - version: 2.1\nTCP 1 1 2368 13 18446744073709551615 : tunables 0 0 0 : slabdata 1 1 0\n",
    )
    .unwrap();
    let out = tune()
        .arg("--root")
        .arg(dir.path())
        .args(["check", "--target", "1000", "--format", "json"])
        .output()
        .unwrap();
    let json: Json = serde_json::from_slice(&out.stdout).unwrap();
    let row = knob(&json, "memory.per-socket");
    assert_eq!(
        row["current"],
        tune::kernel::slabinfo::DEFAULT_BYTES_PER_SOCKET
    );
    let note = row["note"].as_str().unwrap();
    let path = dir.path().join("proc/slabinfo");
    assert!(
        note.contains(&format!(
            "{}: line 2: TCP: 18446744073709551615 pages per slab",
            path.display()
        )),
        "{note}"
    );
}

#[test]
fn explain_takes_a_unique_suffix_and_suggests_near_names() {
    let out = tune().args(["explain", "somaxconn"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("net.core.somaxconn\n  what:"), "{text}");
    let out = tune().args(["explain", "nofile.hard"]).output().unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("rlimit.nofile.hard\n"));
    let out = tune().args(["explain", "tcp_mme"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("did you mean net.ipv4.tcp_mem"), "{err}");
}

/// explain and tune-knobs(7) render the same KnobDoc: each field explain prints for a knob
/// appears in that knob's entry of the committed man page.
#[test]
fn explain_and_the_man_page_say_the_same() {
    let man =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/tune-knobs.7"))
            .unwrap();
    // The page's text with roff's escapes undone, as plain words.
    let plain = man
        .replace("\\-", "-")
        .replace("\\*(Aq", "'")
        .replace("\\[u00D7]", "×");
    let plain: String = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    for knob in [
        "net.core.somaxconn",
        "rlimit.nofile.hard",
        "net.ipv4.tcp_mem",
        "memory.per-socket",
    ] {
        let out = tune().args(["explain", knob]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for line in text.lines().skip(1) {
            let (label, field) = line.trim_start().split_once(':').unwrap();
            let field: String = field.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                plain.contains(&field),
                "{knob}: {label} {field:?} is not in tune-knobs.7"
            );
        }
    }
}

#[test]
fn a_root_without_proc_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = tune()
        .arg("--root")
        .arg(dir.path())
        .args(["check", "--target", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no proc/ under it"));
}

#[test]
fn json_names_the_profile_chain() {
    let (json, _) = check_json(Some("linux-6.18-host"), &["--profile", "1m-loopback"]);
    assert_eq!(
        json["profile"]["extends"],
        serde_json::json!(["1m", "100k", "10k"])
    );
    assert_eq!(json["profile"]["role"], "loopback");
    let (json, _) = check_json(Some("linux-6.18-host"), &["--target", "10"]);
    assert_eq!(json["profile"]["extends"], serde_json::json!([]));
    assert_eq!(json["profile"]["source"], "--target");
}
