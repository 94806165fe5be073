//! Epoll websocket server and load generator behind `tune serve` and `tune load`.

pub mod child;
pub mod counter_blocks;
pub mod loadgen;
pub mod protocol;
pub mod server;
pub mod sys;
pub mod tls;
