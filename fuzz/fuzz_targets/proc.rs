//! Fuzz target: the /proc parsers (slabinfo with its cost arithmetic, netstat, file-nr,
//! sockstat, meminfo, nf_conntrack stat, process status/limits/stat). The first byte picks the
//! parser. Oracle: no panic, no overflow (overflow checks are on in the fuzz build).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tune::kernel::parse_any(data));
