//! `/proc/PID/uid_map`: whether a process runs in the initial user namespace, where the kernel judges host-wide capabilities.
//!
//! The kernel checks CAP_SYS_RESOURCE (raising RLIMIT_NOFILE above the hard limit),
//! CAP_SYS_ADMIN (the fs.file-max exemption) and the right to write host-wide sysctls
//! against the initial user namespace (`capable()`, not `ns_capable()`). Inside a user
//! namespace (`unshare -U`, a rootless container) CapEff shows every bit and none of them
//! count. The initial namespace's uid_map is the identity map of all 2^32 − 1 ids:
//! `0 0 4294967295` (Documentation/admin-guide/namespaces and user_namespaces(7)).

use super::{number, ParseError};

/// Ids the initial namespace maps: every uid but (uid_t)-1.
pub const IDENTITY_RANGE: u64 = u32::MAX as u64;

/// One line of uid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Extent {
    pub inside: u64,
    pub outside: u64,
    pub count: u64,
}

/// Parses uid_map (or gid_map) text.
pub fn parse(text: &str) -> Result<Vec<Extent>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [] => continue,
            [a, b, c] => out.push(Extent {
                inside: number(n, a)?,
                outside: number(n, b)?,
                count: number(n, c)?,
            }),
            _ => {
                return Err(ParseError::new(
                    n,
                    format!("expected \"inside outside count\", found {line:?}"),
                ))
            }
        }
    }
    Ok(out)
}

/// True when the map is the initial namespace's identity map: capabilities count host-wide.
pub fn is_initial(extents: &[Extent]) -> bool {
    matches!(
        extents,
        [Extent {
            inside: 0,
            outside: 0,
            count: IDENTITY_RANGE
        }]
    )
}

/// Where the process's capabilities are judged, in words for a reason line.
pub fn describe(extents: &[Extent]) -> String {
    if is_initial(extents) {
        return "the initial user namespace".into();
    }
    match extents {
        [] => "a user namespace with no uid map yet".into(),
        [e] => format!(
            "a user namespace (rootless container): uid {} inside is uid {} outside",
            e.inside, e.outside
        ),
        _ => format!(
            "a user namespace (rootless container): {} uid ranges mapped",
            extents.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44: cat /proc/self/uid_map in the initial namespace (the kernel pads to 10 columns).
    const INITIAL_6_18: &str = "         0          0 4294967295\n";
    /// Linux 6.18.44: unshare -Ur cat /proc/self/uid_map (root mapped to root, one id).
    const UNSHARE_UR_6_18: &str = "         0          0          1\n";
    /// A rootless container runtime's map (user_namespaces(7) example: subordinate ids).
    const ROOTLESS: &str = "         0       1000          1\n         1     100000      65536\n";

    #[test]
    fn the_initial_namespace_is_the_identity_map() {
        let e = parse(INITIAL_6_18).unwrap();
        assert!(is_initial(&e));
        assert_eq!(describe(&e), "the initial user namespace");
    }

    #[test]
    fn unshare_maps_root_to_root_and_is_still_not_initial() {
        let e = parse(UNSHARE_UR_6_18).unwrap();
        assert!(!is_initial(&e));
        assert!(describe(&e).contains("user namespace (rootless container)"));
        let e = parse(ROOTLESS).unwrap();
        assert_eq!(e.len(), 2);
        assert!(!is_initial(&e));
        assert!(!is_initial(&[]));
    }

    #[test]
    fn garbage_names_the_line() {
        let err = parse("0 0 4294967295\n0 0\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse("a b c").is_err());
    }
}
