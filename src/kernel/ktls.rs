//! Whether the kernel offers kTLS: the TCP upper-layer protocols it has registered
//! (`/proc/sys/net/ipv4/tcp_available_ulp`, where the `tls` module, loaded or built in, adds
//! `tls`) and the loaded modules (`/proc/modules`, absent on a kernel without loadable modules).

use super::ParseError;

/// The ULP names of `tcp_available_ulp`: one line of names separated by spaces.
pub fn available_ulps(text: &str) -> Result<Vec<&str>, ParseError> {
    if text.lines().nth(1).is_some_and(|l| !l.trim().is_empty()) {
        return Err(ParseError::new(
            2,
            "expected one line of names separated by spaces",
        ));
    }
    Ok(text.split_whitespace().collect())
}

/// The module names of `/proc/modules`: the first word of each line ("name size refcount deps
/// state address").
pub fn module_names(text: &str) -> Result<Vec<&str>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [name, size, ..] if size.parse::<u64>().is_ok() => Ok(*name),
                _ => Err(ParseError::new(
                    i + 1,
                    format!("expected \"name size refcount deps state address\", found {l:?}"),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.18.44 (this VM, no `tls` module): cat /proc/sys/net/ipv4/tcp_available_ulp
    const ULP_LINUX_6_18: &str = "mptcp\n";

    #[test]
    fn ulps_of_linux_6_18_have_no_tls() {
        assert_eq!(available_ulps(ULP_LINUX_6_18).unwrap(), ["mptcp"]);
        assert_eq!(available_ulps("").unwrap(), Vec::<&str>::new());
        assert_eq!(available_ulps("mptcp tls\n").unwrap(), ["mptcp", "tls"]);
        assert_eq!(available_ulps("mptcp\ntls\n").unwrap_err().line, 2);
    }

    #[test]
    fn module_names_are_first_words() {
        // In the format of the kernel's m_show (kernel/module/procfs.c); this VM's kernel has no
        // loadable modules, so no /proc/modules to paste from.
        let text = "tls 155648 0 - Live 0x0000000000000000\nnf_conntrack 196608 1 nf_nat, Live 0x0000000000000000\n";
        assert_eq!(module_names(text).unwrap(), ["tls", "nf_conntrack"]);
        assert_eq!(module_names("tls\n").unwrap_err().line, 1);
    }
}
