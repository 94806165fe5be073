//! Fuzz target: embedded-server's frame oracle (embedded_server::protocol::oracles::frame).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedded_server::protocol::oracles::frame(data));
