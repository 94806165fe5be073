//! What a worker reads about itself from /proc/self: its open descriptors and its resident
//! memory. File access here, parsing in [`statm_resident_pages`].

/// Descriptors this process has open now (entries of /proc/self/fd, less the one that reads it),
/// or `None` when /proc is not mounted.
pub fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1))
}

/// The resident pages in the text of /proc/PID/statm (its second field).
pub fn statm_resident_pages(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size of this process in bytes (0 when /proc/self/statm cannot be read).
pub fn rss_bytes() -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64);
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| statm_resident_pages(&s))
        // Saturating, not wrapping: a figure past u64 bytes cannot come from a live kernel,
        // and a budget compared with it must then see "too much", never a small number.
        .map_or(0, |pages| pages.saturating_mul(page))
}

/// CPU time (user and system) the calling thread has used, from CLOCK_THREAD_CPUTIME_ID
/// (nanosecond resolution; `tune top` times one refresh with it). `None` if the clock fails.
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(std::time::Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_second_field_is_resident_pages() {
        // /proc/self/statm of a shell, Linux 6.18.44: size resident shared text lib data dt.
        assert_eq!(
            statm_resident_pages("2123 1024 768 237 0 322 0\n"),
            Some(1024)
        );
        assert_eq!(statm_resident_pages(""), None);
        assert!(rss_bytes() > 0);
        assert!(open_fds().unwrap() >= 3);
    }

    #[test]
    fn thread_cpu_time_grows_with_work() {
        let t0 = super::thread_cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(super::thread_cpu_time().unwrap() > t0, "{x}");
    }
}
