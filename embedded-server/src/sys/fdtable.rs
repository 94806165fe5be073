//! A table of per-connection slots indexed by fd that owns the fds in it: a socket enters as an
//! `OwnedFd` and leaves through [`FdTable::close`] (or when the table is dropped), so no raw
//! close is callable outside `sys`. The slots themselves stay the caller's compact type: the
//! ownership is one bit per fd beside them, not a field in every slot.

use std::ops::{Index, IndexMut};
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};

/// Bits per word of the ownership bitmap.
const WORD: usize = u64::BITS as usize;

/// Slots indexed by fd, and the fds they own.
#[derive(Debug, Default)]
pub struct FdTable<T> {
    slots: Vec<T>,
    /// Bit `fd` is set while the table owns `fd`.
    owned: Vec<u64>,
}

impl<T: Default> FdTable<T> {
    pub fn new() -> Self {
        FdTable {
            slots: Vec::new(),
            owned: Vec::new(),
        }
    }

    /// Like [`FdTable::new`] with room for fds below `n`.
    pub fn with_capacity(n: usize) -> Self {
        FdTable {
            slots: Vec::with_capacity(n),
            owned: Vec::with_capacity(n.div_ceil(WORD)),
        }
    }

    /// Takes ownership of `fd`; its slot (the default value, the table grown to a multiple of
    /// `chunk` slots if needed) is at the returned index, the fd number.
    pub fn adopt(&mut self, fd: OwnedFd, chunk: usize) -> usize {
        let i = fd.into_raw_fd() as usize;
        if i >= self.slots.len() {
            let want = (i / chunk.max(1) + 1) * chunk.max(1);
            self.slots.resize_with(want, T::default);
        }
        if i / WORD >= self.owned.len() {
            self.owned.resize(i / WORD + 1, 0);
        }
        self.owned[i / WORD] |= 1 << (i % WORD);
        self.slots[i] = T::default();
        i
    }

    /// Whether the table owns fd `i`.
    pub fn owns(&self, i: usize) -> bool {
        self.owned
            .get(i / WORD)
            .is_some_and(|w| w & (1 << (i % WORD)) != 0)
    }

    /// The fd of slot `i`, borrowed from the table. Panics when the table does not own it (a
    /// slot used after its close: a bug, like an index out of bounds).
    pub fn fd(&self, i: usize) -> BorrowedFd<'_> {
        assert!(self.owns(i), "fd {i} is not owned by the table");
        // SAFETY: the table owns fd `i` (its bit is set from adopt to close), so it stays open
        // for the lifetime of this borrow of the table; close needs `&mut self`.
        unsafe { BorrowedFd::borrow_raw(i as RawFd) }
    }

    /// The fd of slot `i` and the slot, for writing what the slot holds to its socket.
    pub fn fd_and_slot(&mut self, i: usize) -> (BorrowedFd<'_>, &mut T) {
        assert!(self.owns(i), "fd {i} is not owned by the table");
        // SAFETY: as in `fd`: owned from adopt to close, and close needs the table, which the
        // returned borrows hold.
        let fd = unsafe { BorrowedFd::borrow_raw(i as RawFd) };
        (fd, &mut self.slots[i])
    }

    /// Closes fd `i` (if the table owns it) and resets its slot. Returns whether it was owned.
    pub fn close(&mut self, i: usize) -> bool {
        if !self.owns(i) {
            return false;
        }
        self.owned[i / WORD] &= !(1 << (i % WORD));
        self.slots[i] = T::default();
        // SAFETY: the table owned fd `i` and has just given it up; nothing else closes it.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(i as RawFd) });
        true
    }
}

impl<T> FdTable<T> {
    /// Number of slots (one past the highest fd seen, rounded up to the chunk).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.slots.iter()
    }
}

impl<T> Index<usize> for FdTable<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.slots[i]
    }
}

impl<T> IndexMut<usize> for FdTable<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.slots[i]
    }
}

impl<T> Drop for FdTable<T> {
    fn drop(&mut self) {
        for (w, bits) in self.owned.iter().enumerate() {
            for b in 0..WORD {
                if bits & (1 << b) != 0 {
                    // SAFETY: the table owns this fd and is going away.
                    drop(unsafe {
                        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd((w * WORD + b) as RawFd)
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    #[test]
    fn owns_what_it_adopted_and_closes_it_once() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let wfd = w.as_raw_fd();
        let mut t: FdTable<u8> = FdTable::new();
        let i = t.adopt(w, 64);
        assert_eq!(i, wfd as usize);
        assert_eq!(t.len() % 64, 0);
        assert!(t.owns(i) && !t.owns(r.as_raw_fd() as usize));
        t[i] = 7;
        assert_eq!(crate::sys::io::write(t.fd(i), b"x"), Ok(1));
        assert!(t.close(i));
        assert_eq!(t[i], 0);
        assert!(!t.close(i), "closed twice");
        // The write end is closed: the reader sees the byte, then EOF.
        let mut buf = [0u8; 2];
        assert_eq!(crate::sys::io::read(r.as_fd(), &mut buf), Ok(1));
        assert_eq!(crate::sys::io::read(r.as_fd(), &mut buf), Ok(0));
    }

    #[test]
    fn dropping_the_table_closes_its_fds() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut t: FdTable<u8> = FdTable::new();
        t.adopt(w, 1);
        drop(t);
        let mut buf = [0u8; 1];
        assert_eq!(crate::sys::io::read(r.as_fd(), &mut buf), Ok(0));
    }
}
