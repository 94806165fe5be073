//! RLIMIT_NOFILE of this process (getrlimit/setrlimit) and of other processes (prlimit).

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Soft and hard RLIMIT_NOFILE of this process.
pub fn nofile() -> Result<(u64, u64), Errno> {
    getrlimit(Resource::RLIMIT_NOFILE)
}

/// Sets this process's RLIMIT_NOFILE. Raising the hard limit needs CAP_SYS_RESOURCE (EPERM otherwise).
pub fn set_nofile(soft: u64, hard: u64) -> Result<(), Errno> {
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard)
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (what every server should do at start)
/// and returns the new soft limit.
pub fn raise_nofile_to_hard() -> Result<u64, Errno> {
    let (soft, hard) = nofile()?;
    if soft < hard {
        set_nofile(hard, hard)?;
    }
    Ok(hard)
}

/// Sets RLIMIT_NOFILE of process `pid` with prlimit(2) and returns the old (soft, hard).
/// EPERM when raising a hard limit without CAP_SYS_RESOURCE or above fs.nr_open;
/// ESRCH when there is no such process; EINVAL when soft > hard.
pub fn prlimit_nofile(pid: u32, soft: u64, hard: u64) -> Result<(u64, u64), Errno> {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
    // SAFETY: `new` and `old` are valid, properly aligned rlimit structs that live for the
    // whole call; prlimit reads `new` and writes `old` and keeps neither pointer.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, &mut old) };
    Errno::result(rc)?;
    Ok((old.rlim_cur, old.rlim_max))
}

/// Reads RLIMIT_NOFILE of process `pid` with prlimit(2) without changing it.
pub fn get_nofile_of(pid: u32) -> Result<(u64, u64), Errno> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
    // SAFETY: a null `new` pointer asks prlimit only to read; `old` is a valid rlimit struct
    // that outlives the call.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    Errno::result(rc)?;
    Ok((old.rlim_cur, old.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prlimit_reads_and_lowers_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let (soft, hard) = get_nofile_of(pid).unwrap();
        assert_eq!((soft, hard), nofile().unwrap());
        // Lowering needs no privilege.
        let old = prlimit_nofile(pid, 100, 200).unwrap();
        assert_eq!(old, (soft, hard));
        assert_eq!(get_nofile_of(pid).unwrap(), (100, 200));
        // soft above hard is EINVAL.
        assert_eq!(prlimit_nofile(pid, 300, 200), Err(Errno::EINVAL));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
