//! Replays the fuzz corpora and every crash found (fuzz/corpus/TARGET, fuzz/regressions/TARGET)
//! through the same oracles the cargo-fuzz targets use, so plain `cargo test` guards them.

use std::path::Path;

use embedded_server::protocol::oracles;

fn replay(target: &str, oracle: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| oracle(&data));
            assert!(r.is_ok(), "{} fails its oracle", path.display());
            n += 1;
        }
    }
    // The seeds are checked in: an empty replay means the files went missing.
    assert!(n > 0, "no inputs for fuzz target {target} under {}", root.display());
}

#[test]
fn handshake_corpus() {
    replay("handshake", oracles::handshake);
}

#[test]
fn frame_corpus() {
    replay("frame", oracles::frame);
}

#[test]
fn utf8_corpus() {
    replay("utf8", oracles::utf8);
}

#[test]
fn session_corpus() {
    replay("session", oracles::session);
}
