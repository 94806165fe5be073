//! The only home of syscalls and `unsafe` in tune: epoll, sockets, rlimits, signals, shared memory.
//! Every `unsafe` has a `// SAFETY:` comment.
//!
//! Descriptors are owned by type: sockets come out of accept and connect as `OwnedFd`s, and the
//! reactors' fd-indexed slot tables own theirs through [`fdtable::FdTable`], which alone closes
//! them. Everything else borrows (`BorrowedFd`); no raw close is exported.
#![allow(unsafe_code)]

pub mod alloc;
pub mod epoll;
pub mod fdtable;
pub mod io;
pub mod net;
pub mod proc;
pub mod rlimit;
pub mod shm;
pub mod signal;

pub use nix::errno::Errno;
