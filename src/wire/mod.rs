//! Pure parsers and encoders for the bytes sources read and write.
pub mod control;
pub mod docker;
pub mod http;
pub mod inotify;
pub mod journal;
pub mod netlink;
pub mod nft_monitor;
pub mod route;
pub mod rtnetlink;
