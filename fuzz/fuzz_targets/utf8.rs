//! Fuzz target: embedded-server's utf8 oracle (embedded_server::protocol::oracles::utf8).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedded_server::protocol::oracles::utf8(data));
