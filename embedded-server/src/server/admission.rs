//! Fair admission without I/O: which handshake to close when the handshake slots are full (the
//! oldest), and how many connections each source address holds against its optional cap.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Handshakes in accept order. Entries are (fd, deadline tick): an fd is reused after close, so
/// an entry is current only while that fd is still handshaking with the same deadline (a reused
/// fd with the same deadline was accepted in the same tick: just as old).
#[derive(Debug, Default)]
pub struct Handshakes {
    queue: VecDeque<(i32, u32)>,
    /// Connections in the handshake now.
    pub count: usize,
}

impl Handshakes {
    pub fn started(&mut self, fd: i32, deadline: u32) {
        self.count += 1;
        self.queue.push_back((fd, deadline));
    }

    pub fn ended(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// The oldest handshake still current, by `current(fd, deadline)`; its entry is removed.
    pub fn oldest(&mut self, mut current: impl FnMut(i32, u32) -> bool) -> Option<i32> {
        while let Some((fd, d)) = self.queue.pop_front() {
            if current(fd, d) {
                return Some(fd);
            }
        }
        None
    }

    /// Drops stale entries once they outnumber the live ones, so the queue stays bounded by the
    /// handshakes in flight however many come and go.
    pub fn prune(&mut self, mut current: impl FnMut(i32, u32) -> bool) {
        if self.queue.len() > 2 * self.count + 1024 {
            self.queue.retain(|&(fd, d)| current(fd, d));
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// Connections per source address, with the fd -> address map to release them. Used only when a
/// cap is set (it costs a getpeername per accept and a map entry per connection).
#[derive(Debug, Default)]
pub struct Sources {
    per_ip: HashMap<IpAddr, u32>,
    of_fd: HashMap<i32, IpAddr>,
}

impl Sources {
    /// Counts `fd` against `ip`; false (nothing counted) when `ip` already holds `cap`.
    pub fn admit(&mut self, fd: i32, ip: IpAddr, cap: usize) -> bool {
        let n = self.per_ip.entry(ip).or_insert(0);
        if *n as usize >= cap {
            return false;
        }
        *n += 1;
        self.of_fd.insert(fd, ip);
        true
    }

    pub fn release(&mut self, fd: i32) {
        if let Some(ip) = self.of_fd.remove(&fd) {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    pub fn held_by(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }
}

/// Which connections to close when `held` exceeds `budget`: the largest first, until what is
/// left is at most 90% of the budget (so the worker does not close one connection per tick at
/// the edge). `sizes` is (fd, bytes held).
pub fn over_budget(mut sizes: Vec<(i32, usize)>, held: usize, budget: usize) -> Vec<i32> {
    if held <= budget {
        return Vec::new();
    }
    let target = budget / 10 * 9;
    sizes.sort_unstable_by_key(|&(_, n)| std::cmp::Reverse(n));
    let mut left = held;
    let mut out = Vec::new();
    for (fd, n) in sizes {
        if left <= target {
            break;
        }
        left = left.saturating_sub(n);
        out.push(fd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_current_handshake_skips_reused_fds() {
        let mut h = Handshakes::default();
        h.started(5, 10);
        h.started(6, 11);
        h.started(7, 12);
        // fd 5 finished its handshake; fd 6 was closed and reused with a later deadline.
        let live = |fd: i32, d: u32| matches!((fd, d), (7, 12) | (6, 20));
        assert_eq!(h.oldest(live), Some(7));
        assert_eq!(h.oldest(live), None);
    }

    #[test]
    fn queue_stays_bounded_under_churn() {
        let mut h = Handshakes::default();
        for i in 0..100_000 {
            h.started(i % 50, i as u32);
            h.ended();
            h.prune(|_, _| false);
        }
        assert!(h.queued() <= 1025, "{}", h.queued());
    }

    #[test]
    fn source_cap() {
        let mut s = Sources::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(s.admit(3, a, 2));
        assert!(s.admit(4, a, 2));
        assert!(!s.admit(5, a, 2));
        s.release(5); // never admitted: no effect
        assert_eq!(s.held_by(a), 2);
        s.release(3);
        assert!(s.admit(5, a, 2));
        s.release(4);
        s.release(5);
        assert_eq!(s.held_by(a), 0);
        assert!(s.per_ip.is_empty());
    }

    #[test]
    fn budget_closes_the_largest_until_under_90_percent() {
        let sizes = vec![(1, 10), (2, 500), (3, 300), (4, 200)];
        assert_eq!(over_budget(sizes.clone(), 1010, 2000), Vec::<i32>::new());
        // 1010 held, budget 1000 -> down to <= 900: closing fd 2 (500) is enough.
        assert_eq!(over_budget(sizes.clone(), 1010, 1000), vec![2]);
        assert_eq!(over_budget(sizes, 1010, 500), vec![2, 3]);
    }
}
