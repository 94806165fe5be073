//! Two `tune serve --verify` runs at once: without --listen each listens on a port the kernel picks, so they never clash.

use crate::support::tune;

#[test]
fn two_verifies_at_once_do_not_clash() {
    let run = || {
        std::thread::spawn(|| {
            tune()
                .args(["serve", "--verify", "200", "--hold", "1"])
                .output()
                .unwrap()
        })
    };
    let (a, b) = (run(), run());
    let mut ports = Vec::new();
    for out in [a.join().unwrap(), b.join().unwrap()] {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}\n{stdout}");
        assert!(stdout.contains("VERIFIED: this host held 200"), "{stdout}");
        let port: u16 = err
            .lines()
            .find_map(|l| l.strip_prefix("listening on 127.0.0.1:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no listening line: {err}"));
        assert_ne!(port, 8000, "--verify without --listen takes a free port");
        ports.push(port);
    }
    assert_ne!(ports[0], ports[1]);
}
