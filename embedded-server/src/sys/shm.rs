//! Counters shared between processes: a memfd mapped MAP_SHARED as an array of `AtomicU64`.
//! The supervisor creates it; workers inherit the fd ([`inherit_fd`]) and map the same pages, so
//! any worker can answer /metrics with every worker's counters and the supervisor reads them
//! without messages.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

/// `len` u64 counters in shared memory, all starting at zero.
#[derive(Debug)]
pub struct SharedU64s {
    ptr: NonNull<AtomicU64>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is only ever accessed through `&AtomicU64`, which is Sync; the pointer
// stays valid until Drop, which needs exclusive ownership.
unsafe impl Send for SharedU64s {}
// SAFETY: as above, all access is atomic.
unsafe impl Sync for SharedU64s {}

impl SharedU64s {
    /// Creates a fresh memfd (close-on-exec; see [`inherit_fd`]) holding `len` zeroed counters.
    pub fn create(name: &str, len: usize) -> Result<Self, Errno> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, (len * 8) as libc::off_t)?;
        Self::map(fd, len)
    }

    /// Maps an inherited memfd. Takes ownership of `fd`; EINVAL if it is smaller than `len`
    /// counters or not a regular file.
    pub fn from_inherited(fd: RawFd, len: usize) -> Result<Self, Errno> {
        // SAFETY: the caller hands over an open fd it inherited and does not use it otherwise.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(&fd)?;
        if (st.st_size as usize) < len * 8 {
            return Err(Errno::EINVAL);
        }
        // The inherited fd lost FD_CLOEXEC for the exec; set it again so our own children
        // (none expected) do not inherit it by accident.
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Self, Errno> {
        let bytes = NonZeroUsize::new(len * 8).ok_or(Errno::EINVAL)?;
        // SAFETY: a fresh shared mapping of a file we own, at an address the kernel picks; no
        // existing memory is affected. The file is at least `bytes` long (checked or truncated).
        let p = unsafe {
            mmap(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )?
        };
        Ok(SharedU64s {
            ptr: p.cast(),
            len,
            fd,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counter `i`. Panics when out of range (a layout bug, never input-driven).
    pub fn get(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len, "shared counter {i} out of range {}", self.len);
        // SAFETY: `i < len` so the pointer is inside the live mapping, which is 8-aligned (page
        // aligned) and only accessed atomically by every process that maps it.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for SharedU64s {
    fn drop(&mut self) {
        // SAFETY: the mapping was created with this pointer and length and no reference into it
        // can outlive `self` (they borrow it).
        let _ = unsafe { munmap(self.ptr.cast(), self.len * 8) };
    }
}

/// Makes `fd` survive the exec of `cmd` at the same number (clears FD_CLOEXEC in the child only).
pub fn inherit_fd(cmd: &mut Command, fd: RawFd) {
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl, which is
    // async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_memfd_see_each_other() {
        let a = SharedU64s::create("test", 4).unwrap();
        let dup = nix::unistd::dup(a.fd.as_fd()).unwrap();
        let b = SharedU64s::from_inherited(std::os::fd::IntoRawFd::into_raw_fd(dup), 4).unwrap();
        a.get(3).fetch_add(7, Ordering::Relaxed);
        assert_eq!(b.get(3).load(Ordering::Relaxed), 7);
        assert_eq!(b.get(0).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn too_small_memfd_is_rejected() {
        let a = SharedU64s::create("small", 2).unwrap();
        let dup = nix::unistd::dup(a.fd.as_fd()).unwrap();
        let r = SharedU64s::from_inherited(std::os::fd::IntoRawFd::into_raw_fd(dup), 3);
        assert_eq!(r.err(), Some(Errno::EINVAL));
    }
}
