//! Fuzz target: the /proc parsers (slabinfo with its cost arithmetic, netstat, file-nr,
//! sockstat, meminfo, nf_conntrack stat, process status/limits/stat). The first byte picks the
//! parser. Oracle: no panic, no overflow (overflow checks are on in the fuzz build).
#![no_main]

use tune::kernel::{conntrack, file_nr, meminfo, netstat, process, slabinfo, sockstat};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(caches) = slabinfo::parse(text) {
                for c in &caches {
                    let _ = c.bytes_per_object();
                    let _ = c.bytes_total();
                }
                let _ = slabinfo::socket_cost(&caches);
            }
        }
        1 => drop(netstat::parse(text)),
        2 => drop(file_nr::parse(text)),
        3 => drop(sockstat::parse(text)),
        4 => drop(meminfo::parse(text)),
        5 => drop(conntrack::parse_stat(text)),
        6 => drop(process::parse_status(text)),
        7 => drop(process::parse_nofile(text)),
        _ => drop(process::parse_start_time(text)),
    }
});
