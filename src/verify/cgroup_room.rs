//! Pure: the memory the verify run's watchdog may use inside a container, under the memory
//! cgroup's limit.

/// The memory the watchdog may still use, in the host's terms: the host's usable memory, or the
/// floor plus what the cgroup still allows (its headroom less the reserve), whichever is less.
/// With this the watchdog's floor arithmetic holds the run under the cgroup's limit too.
pub fn usable(host_usable: u64, floor: u64, cgroup_usable: Option<u64>) -> u64 {
    match cgroup_usable {
        Some(cg) => host_usable.min(floor.saturating_add(cg)),
        None => host_usable,
    }
}

/// Did the cgroup bind at the watchdog's stop? True when the cgroup's room was the smaller.
pub fn cgroup_binds(host_usable: u64, floor: u64, cgroup_usable: Option<u64>) -> bool {
    cgroup_usable.is_some_and(|cg| floor.saturating_add(cg) < host_usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn the_cgroup_caps_what_the_watchdog_may_use() {
        // 22 GB usable on the host, floor 1.2 GB, 380 MB left in the cgroup.
        let host = 22_000 * MB;
        let floor = 1_200 * MB;
        assert_eq!(usable(host, floor, Some(380 * MB)), floor + 380 * MB);
        assert!(cgroup_binds(host, floor, Some(380 * MB)));
        assert_eq!(usable(host, floor, None), host);
        // A cgroup larger than what the host has left does not bind.
        assert_eq!(usable(500 * MB, floor, Some(380 * MB)), 500 * MB);
        assert!(!cgroup_binds(500 * MB, floor, Some(380 * MB)));
    }
}
