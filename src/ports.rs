//! Ephemeral-port arithmetic for `net.ipv4.ip_local_port_range`: ports offered, ports a layout needs, and a fix that only widens.
//!
//! The kernel picks a connecting socket's source port from the range (both ends
//! included), skipping `ip_local_reserved_ports`; a port is taken per (source address,
//! destination address, destination port), so each such pair offers the whole range.
//! A range is therefore judged by its port count against the count a layout needs,
//! never by whether it contains some other range.

/// Lowest port a fix offers: below it lie the well-known and registered services.
pub const LOWEST_EPHEMERAL: u64 = 1024;
/// Highest port there is.
pub const HIGHEST_PORT: u64 = 65535;

/// Ports a range offers, `reserved` of them excluded (ports in ip_local_reserved_ports that fall inside).
pub fn count(range: [u64; 2], reserved: u64) -> u64 {
    let [lo, hi] = range;
    if hi < lo {
        return 0;
    }
    (hi - lo + 1).saturating_sub(reserved)
}

/// Ports needed per (source, destination) pair for `connections` spread over `pairs` pairs.
pub fn needed_per_pair(connections: u64, pairs: u64) -> u64 {
    connections.div_ceil(pairs.max(1))
}

/// Source addresses needed to reach `connections` to one destination with `ports` per address.
pub fn sources_needed(connections: u64, ports: u64) -> Option<u64> {
    (ports > 0).then(|| connections.div_ceil(ports).max(1))
}

/// Does `range` offer `needed` ports?
pub fn enough(range: [u64; 2], reserved: u64, needed: u64) -> bool {
    count(range, reserved) >= needed
}

/// The fix for a range that offers too few ports: the smallest widening of `range` that
/// offers `needed`, first upwards (to [`HIGHEST_PORT`]: ports above the default range's top are
/// rarely a service's), then downwards (to [`LOWEST_EPHEMERAL`]). Never narrower than `range`:
/// a range that already offers enough comes back unchanged. `Err` carries the widest range
/// when even that is too few (more source addresses are the fix then).
pub fn widen(range: [u64; 2], reserved: u64, needed: u64) -> Result<[u64; 2], [u64; 2]> {
    let [lo, hi] = range;
    if hi < lo {
        // Not a range the kernel accepts; widen the ordered one.
        return widen([hi, lo], reserved, needed);
    }
    if enough(range, reserved, needed) {
        return Ok(range);
    }
    let want = needed.saturating_add(reserved);
    let ceiling = HIGHEST_PORT.max(hi);
    let floor = LOWEST_EPHEMERAL.min(lo);
    // Upwards first.
    let mut out = [lo, lo.saturating_add(want - 1).min(ceiling).max(hi)];
    if !enough(out, reserved, needed) {
        out[0] = (out[1] + 1).saturating_sub(want).max(floor).min(lo);
    }
    // The kernel prefers start and end of different parity (it splits the range into even
    // ports for connect() and odd for bind()); widen by one more when that is free.
    if (out[1] - out[0]) % 2 == 0 {
        if out[1] < ceiling {
            out[1] += 1;
        } else if out[0] > floor {
            out[0] -= 1;
        }
    }
    if enough(out, reserved, needed) {
        Ok(out)
    } else {
        Err(out)
    }
}

/// The range a fix writes when `wanted` (a profile's range) offers more ports than `live`:
/// `wanted` itself when it contains `live` (the profile's own choice, and wider), else `live`
/// widened to `wanted`'s port count. Never narrower than `live`.
pub fn fix(live: [u64; 2], wanted: [u64; 2]) -> [u64; 2] {
    if wanted[0] <= live[0] && wanted[1] >= live[1] {
        return wanted;
    }
    widen(live, 0, count(wanted, 0)).unwrap_or_else(|widest| widest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_include_both_ends() {
        // Linux 6.18 default 32768 60999
        assert_eq!(count([32768, 60999], 0), 28_232);
        assert_eq!(count([1024, 50000], 0), 48_977);
        assert_eq!(count([1024, 50000], 77), 48_900);
        assert_eq!(count([60999, 32768], 0), 0);
    }

    #[test]
    fn a_range_that_offers_enough_is_left_alone() {
        // Issue 10: 1024-50000 offers 48,977 ports; 20,000 from one source fit.
        assert!(enough([1024, 50000], 0, 20_000));
        assert_eq!(widen([1024, 50000], 0, 20_000), Ok([1024, 50000]));
        // The old fix "41000 60999" would have shrunk it.
    }

    #[test]
    fn widening_goes_up_first_and_never_shrinks() {
        let r = widen([32768, 60999], 0, 30_000).unwrap();
        assert_eq!(r[0], 32768);
        assert!(r[1] > 60999 && count(r, 0) >= 30_000, "{r:?}");
        assert_eq!(
            (r[1] - r[0]) % 2,
            1,
            "{r:?}: start and end differ in parity"
        );
        // More than fits above: the bottom comes down too, to 65535 − n + 1.
        let r = widen([32768, 60999], 0, 55_296).unwrap();
        assert_eq!(r, [10240, 65535]);
        // A range starting below 1024 is not lowered further.
        let r = widen([500, 600], 0, 1000).unwrap();
        assert_eq!(r, [500, 1499]);
    }

    #[test]
    fn a_profiles_wider_range_is_taken_as_it_is() {
        // The 1m profile's 10240-65535 contains the default range: written as given.
        assert_eq!(fix([32768, 60999], [10240, 65535]), [10240, 65535]);
        // A narrower range with more ports than the live one: the live one widened.
        let r = fix([40000, 41999], [20000, 60999]);
        assert!(
            r[0] <= 40000 && r[1] >= 41999 && count(r, 0) >= 41_000,
            "{r:?}"
        );
        // Enough already: unchanged.
        assert_eq!(fix([1024, 50000], [41000, 60999]), [1024, 50000]);
    }

    #[test]
    fn more_than_the_widest_range_is_an_error_with_the_widest() {
        assert_eq!(widen([32768, 60999], 0, 70_000), Err([1024, 65535]));
    }

    #[test]
    fn reserved_ports_are_subtracted() {
        let r = widen([32768, 60999], 1000, 28_232).unwrap();
        assert!(count(r, 1000) >= 28_232, "{r:?}");
    }

    #[test]
    fn sources_and_pairs() {
        assert_eq!(sources_needed(1_000_000, 28_232), Some(36));
        assert_eq!(sources_needed(10, 0), None);
        assert_eq!(needed_per_pair(20_000, 1), 20_000);
        assert_eq!(needed_per_pair(20_000, 0), 20_000);
        assert_eq!(needed_per_pair(20_001, 2), 10_001);
    }
}
