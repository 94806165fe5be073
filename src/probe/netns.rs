//! The network namespace, the one place tune learns it: which namespace this process runs in
//! (its inode, for the apply records), whether it is a child of the initial one (host-wide knobs
//! are off limits there), and whether a process shares it. The links under /proc name a
//! namespace by inode; everything is read through the root.

use crate::root::Root;

/// `Some(true)` when /proc/PID/ns/net and /proc/self/ns/net are the same namespace,
/// `None` when either link cannot be read (no such process, not permitted, captured root).
pub fn same_as_ours(root: &Root, pid: u32) -> Option<bool> {
    Some(link(root, &format!("proc/{pid}/ns/net"))? == link(root, OWN)?)
}

/// This process's namespace link.
const OWN: &str = "proc/self/ns/net";

/// A namespace link as text (`net:[4026531833]`), `None` when it cannot be read.
fn link(root: &Root, rel: &str) -> Option<String> {
    root.read_link(rel)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The network namespace this process runs in under `root`: the inode of `proc/self/ns/net`
/// (`net:[4026531833]`), `None` when the root has no such link (a captured tree).
pub fn inode(root: &Root) -> Option<u64> {
    let text = link(root, OWN)?;
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The inode of the initial network namespace, fixed since Linux 6.18 (PROC_NET_INIT_INO = 0xEFFFFFF9);
/// earlier kernels number it like any other namespace.
pub const INIT_NET_NS: &str = "net:[4026531833]";

/// Decides whether tune runs in a child network namespace. `own` and `init` are the links
/// `proc/self/ns/net` and `proc/1/ns/net` (PID 1's may be unreadable, as in containers);
/// `host_only_present` says whether `proc/sys/net/ipv4/tcp_mem`, which the kernel shows only in the
/// initial namespace, exists (None when /proc/sys/net is not there at all).
pub fn in_child_netns(
    own: Option<&str>,
    init: Option<&str>,
    host_only_present: Option<bool>,
) -> bool {
    match (own, init) {
        (Some(a), Some(b)) => a != b,
        (Some(a), None) if a == INIT_NET_NS => false,
        _ => host_only_present == Some(false),
    }
}

/// Reads what decides `in_child_netns` through the root.
pub fn detect_child_netns(root: &Root) -> bool {
    let host_only = root
        .is_dir("proc/sys/net/ipv4")
        .then(|| root.exists("proc/sys/net/ipv4/tcp_mem"));
    in_child_netns(
        link(root, OWN).as_deref(),
        link(root, "proc/1/ns/net").as_deref(),
        host_only,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_detection() {
        // Host, PID 1 readable and the same namespace.
        assert!(!in_child_netns(
            Some("net:[1]"),
            Some("net:[1]"),
            Some(true)
        ));
        // `unshare -n` with PID 1 readable.
        assert!(in_child_netns(
            Some("net:[4026532177]"),
            Some("net:[4026531833]"),
            Some(false)
        ));
        // This machine: PID 1's link is EACCES; Linux 6.18's fixed init inode decides.
        assert!(!in_child_netns(Some(INIT_NET_NS), None, Some(true)));
        // Inside `unshare -n` here (net:[4026532177], tcp_mem hidden).
        assert!(in_child_netns(Some("net:[4026532177]"), None, Some(false)));
        // An older kernel's host namespace with a dynamic inode, tcp_mem visible.
        assert!(!in_child_netns(Some("net:[4026531992]"), None, Some(true)));
        // A captured tree without /proc/self.
        assert!(!in_child_netns(None, None, Some(true)));
    }
}
