//! Fuzz target: the profile loader (tune::profile::load) on arbitrary file contents, placed as
//! a local profile under a temporary fake root. Oracle: no panic (errors are fine).
#![no_main]

use std::sync::OnceLock;

static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = ROOT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(tune::profile::ETC_DIR)).unwrap();
        d
    });
    let file = dir.path().join(tune::profile::ETC_DIR).join("fuzz.toml");
    std::fs::write(&file, data).unwrap();
    let root = tune::root::Root::new(dir.path()).unwrap();
    let _ = tune::profile::load(&root, "fuzz");
});
