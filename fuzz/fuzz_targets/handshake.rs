//! Fuzz target: embedded-server's handshake oracle (embedded_server::protocol::oracles::handshake).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedded_server::protocol::oracles::handshake(data));
