//! Fuzz target: the limits.conf parser (tune::persist::limits::parse), as pam_limits reads it.
//! Oracle: no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tune::persist::limits::parse(text);
});
