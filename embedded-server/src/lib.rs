//! Epoll websocket server and load generator behind `tune serve` and `tune load`.

pub mod sys;
