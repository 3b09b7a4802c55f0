//! Sources: one fd (or a few) each, bytes in, `Event`s out. They never touch nftables.
pub mod cgroups;
pub mod control;
pub mod docker;
pub mod hooks;
pub mod journal;
pub mod nft_monitor;
pub mod notify;
pub mod policy_routing;
pub mod rtnetlink;
pub mod signals;
