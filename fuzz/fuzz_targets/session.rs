//! Fuzz target: embedded-server's session oracle (embedded_server::protocol::oracles::session).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| embedded_server::protocol::oracles::session(data));
