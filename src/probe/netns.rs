//! Whether a process shares tune's network namespace: the namespace links under /proc name the namespace by inode.

use crate::root::Root;

/// `Some(true)` when /proc/PID/ns/net and /proc/self/ns/net are the same namespace,
/// `None` when either link cannot be read (no such process, not permitted, captured root).
pub fn same_as_ours(root: &Root, pid: u32) -> Option<bool> {
    let link = |who: &str| std::fs::read_link(root.path(&format!("proc/{who}/ns/net"))).ok();
    Some(link(&pid.to_string())? == link("self")?)
}
