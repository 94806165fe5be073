//! Captures the files `tune check` reads from the live host into a fixture tree (run by hand, ignored in CI).
//!
//! ```sh
//! TUNE_CAPTURE_DIR=tests/fixtures/roots/NAME cargo test --test integration check_capture -- --ignored
//! # inside a fresh network namespace:
//! cargo test --no-run --test integration   # then run the printed binary with `check_capture --ignored` under `unshare -n`
//! ```
//! The list of files is `tune::knobs::sources`, derived from the registry, so a
//! new knob is captured without editing this file, plus `tune::container::sources`: the
//! capturing process's cgroup files (its memory and pids cgroups and every ancestor) and uid_map.

use tune::knobs::sources;
use tune::root::{Root, RootError};

#[test]
#[ignore = "writes a fixture tree from the live host; run by hand with TUNE_CAPTURE_DIR"]
fn capture_live_host() {
    let dir =
        std::env::var("TUNE_CAPTURE_DIR").expect("set TUNE_CAPTURE_DIR to the fixture directory");
    let host = Root::host();
    std::fs::create_dir_all(&dir).unwrap();
    let out = Root::new(&dir).unwrap();
    for rel in sources(None)
        .into_iter()
        .chain(tune::container::sources(&host, None))
    {
        match host.read(&rel) {
            Ok(text) => out.write_atomic(&rel, text.as_bytes(), 0o644).unwrap(),
            Err(RootError::Absent { .. }) => eprintln!("absent here, not captured: /{rel}"),
            Err(e) => panic!("{e}"),
        }
    }
}
