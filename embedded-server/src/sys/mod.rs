//! The only home of syscalls and `unsafe` in tune: epoll, sockets, rlimits, signals. Every `unsafe` has a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod rlimit;
