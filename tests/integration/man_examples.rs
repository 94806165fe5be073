//! The man pages' EXAMPLES run: every example that only reads (check, explain, profiles, apply
//! --dry-run, rollback --list, generate) is executed against this host as printed, and must
//! answer (exit 0 or 1, never a usage or internal error). `./edge.toml` is a valid profile
//! copied into the working directory, `--pid 1234` this test's own pid. The examples that
//! change the host or run a server stay unrun, each named below with why.

use std::path::Path;

use tune::docs::examples::for_page;

/// Examples not run here, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "tune apply --profile 100k --persist --yes",
        "changes the host",
    ),
    (
        "tune apply --profile 1m --pid 1234 --persist --service myapp.service",
        "changes the host",
    ),
    ("tune rollback", "changes the host"),
    (
        "tune check --target 100000 --unit ./myserver.service",
        "needs a unit file; check_service runs --unit on fixture units under a fake root",
    ),
    (
        "tune serve --listen 0.0.0.0:8080 --workers 2",
        "a server that runs until stopped",
    ),
    (
        "tune serve --verify 20000",
        "run at 80 columns by screens_terminal",
    ),
    (
        "tune top",
        "draws on a terminal: run at 80x24 in tmux by top_terminal",
    ),
    (
        "tune top --pid 1234",
        "draws on a terminal: run at 80x24 in tmux by top_terminal",
    ),
    (
        "tune top --listen 127.0.0.1:9377",
        "a metrics server that runs until stopped: scraped by a real Prometheus in top_prometheus",
    ),
    (
        "tune load ws://10.0.0.5:8080/ --conns 50000",
        "needs a server at 10.0.0.5",
    ),
];

#[test]
fn man_page_examples_run_as_printed() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/valid/edge-proxy.toml"),
        dir.path().join("edge.toml"),
    )
    .unwrap();
    let mut ran = 0;
    let mut names: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for page in names {
        for ex in for_page(&page) {
            if NOT_RUN.iter().any(|(c, _)| *c == ex.command) {
                continue;
            }
            let pid = std::process::id().to_string();
            let words: Vec<String> = ex
                .command
                .split_whitespace()
                .map(|w| {
                    if w == "1234" {
                        pid.clone()
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            assert_eq!(words[0], "tune", "{page}: {}", ex.command);
            let out = crate::support::tune()
                .args(&words[1..])
                .current_dir(dir.path())
                .output()
                .unwrap();
            let code = out.status.code();
            assert!(
                matches!(code, Some(0 | 1)),
                "{page}: `{}` exited {code:?}:\n{}{}",
                ex.command,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !out.stdout.is_empty() || ex.command.contains("generate man"),
                "{page}: `{}` printed nothing",
                ex.command
            );
            ran += 1;
        }
    }
    assert!(ran >= 20, "only {ran} examples ran");
    // generate man wrote its pages where the example says.
    assert!(dir.path().join("man/tune.1").is_file());
}
