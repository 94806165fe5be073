//! `tune serve` seen from a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/test-all) opens websockets from a page and reports each close as the page sees it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::serve_support::Server;
use crate::support::{command, skip};

/// Sockets opened one after another by one browser run.
const TRIES: usize = 30;
/// The message each socket sends: twice the server's default --max-message (1 MiB).
const MESSAGE: usize = 2 * 1024 * 1024;
/// One browser run, start to last close (30 sockets take about 3 s here when idle).
const BROWSER_TIME: Duration = Duration::from_secs(90);
/// What the page logs on the console when it is done (read from Chromium's stderr).
const MARK: &str = "TUNE-RESULT ";

pub fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("chromium"))
        .find(|p| p.is_file())
}

/// The page: `TRIES` sockets in turn, each sends one `MESSAGE`-byte binary message and records
/// the close event's code and wasClean; then one console line with all of them.
fn page(url: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>tune close</title><script>
const big = new Uint8Array({MESSAGE});
const res = [];
function one() {{
  if (res.length >= {TRIES}) {{ console.log("{MARK}" + JSON.stringify(res)); return; }}
  const ws = new WebSocket("{url}");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(big);
  ws.onclose = (e) => {{ res.push([e.code, e.wasClean]); one(); }};
}}
one();
</script>"#
    )
}

/// Runs headless Chromium on `html` until the page logs its result; returns the result (JSON).
fn run_page(chromium: &Path, html: &str) -> String {
    run_page_with(chromium, html, &[])
}

/// [`run_page`] with more Chromium flags (serve_tls.rs: the test certificate's SPKI hash).
pub fn run_page_with(chromium: &Path, html: &str, extra: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("close.html");
    std::fs::write(&file, html).unwrap();
    let mut c = command(chromium);
    c.args([
        // Root in a container: no sandbox; the new headless mode runs one page and stays up.
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!(
        "--user-data-dir={}",
        dir.path().join("profile").display()
    ))
    .args(extra)
    .arg(format!("file://{}", file.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .timeout(BROWSER_TIME);
    let mut browser = c.spawn().expect("start chromium");
    let (tx, rx) = mpsc::channel();
    let stderr = browser.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = BROWSER_TIME.checked_sub(start.elapsed()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        if let Some(i) = line.find(MARK) {
            // Chromium quotes the console message: `"TUNE-RESULT [...]", source: ...`.
            let rest = &line[i + MARK.len()..];
            let json = rest.split('"').next().unwrap_or(rest).to_string();
            drop(browser); // kills its process group
            return json;
        }
        seen.push(line);
    }
    drop(browser);
    panic!(
        "the page logged no result within {BROWSER_TIME:?}; chromium said:\n{}",
        seen.join("\n")
    );
}

/// Issue 24: a browser that sends a message over the limit gets 1009 and a clean close (the
/// server drains the message, then closes, then waits for the browser's close frame), every
/// time, not 1 time in 6.
#[test]
fn chromium_gets_a_clean_1009_for_a_message_over_the_limit() {
    let Some(chromium) = chromium() else {
        return skip(
            "chromium_gets_a_clean_1009_for_a_message_over_the_limit",
            "chromium not found (Debian package chromium)",
        );
    };
    let server = Server::start(&[]);
    let json = run_page(&chromium, &page(&server.url()));
    let closes: Vec<(u16, bool)> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("page result {json:?}: {e}"));
    assert_eq!(closes.len(), TRIES, "{closes:?}");
    let clean = closes.iter().filter(|c| **c == (1009, true)).count();
    assert_eq!(
        clean, TRIES,
        "closes seen by Chromium as (code, wasClean): {closes:?}"
    );
    let metrics = server.get("/metrics").1;
    let line = format!("tune_protocol_violations_total{{reason=\"too_big\"}} {TRIES}\n");
    assert!(
        metrics.contains(&line),
        "want {line:?} in /metrics:\n{metrics}"
    );
}
