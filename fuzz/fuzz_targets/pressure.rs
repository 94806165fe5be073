//! Fuzz target: the memory-pressure parsers the reclaim watch of verify reads every step (PSI of
//! /proc/pressure/memory, the reclaim counters of /proc/vmstat). The first byte picks the
//! parser. Oracle: no panic, no overflow (overflow checks are on in the fuzz build).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tune::kernel::parse_pressure_any(data));
