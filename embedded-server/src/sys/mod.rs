//! The only home of syscalls and `unsafe` in tune: epoll, sockets, rlimits, signals, shared memory.
//! Every `unsafe` has a `// SAFETY:` comment.
//!
//! Connection sockets are plain `RawFd`s here on purpose: the reactor's slot table is indexed by
//! fd and owns them (it closes them with [`io::close`]); wrapping each in an `OwnedFd` would add
//! nothing but drop-order hazards. Long-lived descriptors (epoll, listeners, signalfd, memfd) are
//! `OwnedFd`s.
#![allow(unsafe_code)]

pub mod epoll;
pub mod io;
pub mod net;
pub mod proc;
pub mod rlimit;
pub mod shm;
pub mod signal;

pub use nix::errno::Errno;
