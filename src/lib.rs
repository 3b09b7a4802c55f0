//! netmgrd keeps nftables sets in step with a router's interface addresses.
//!
//! Data flow, one `poll(2)` loop, one thread:
//!
//! ```text
//! rtnetlink ─┐  sources          core (pure)                       edges
//! control   ─┼─> decode -> Event -> Observed ─┐
//! signals   ─┘                      Config ───┴─> plan = Desired ─> diff(Desired, Applied)
//!                                                                    └─> one nftables batch
//! ```
//!
//! Sources (`sources/`) turn bytes into [`event::Event`]s and never touch nftables. The pure
//! core ([`config`], [`observed`], [`plan`], [`diff`], [`wire`]) does no I/O. [`nft`] is the
//! only user of libnftnl, and [`sys`] holds the libc edges.
//!
//! ```
//! use netmgrd::prefix::IpPrefix;
//! let p: IpPrefix = "192.0.2.77/24".parse().unwrap();
//! assert_eq!(p.network().to_string(), "192.0.2.0");
//! ```

pub mod config;
pub mod daemon;
pub mod diff;
pub mod elements;
pub mod event;
pub mod event_loop;
pub mod inet;
pub mod kernel;
pub mod logging;
pub mod managed;
pub mod matching;
pub mod nft;
pub mod observed;
pub mod owned;
pub mod plan;
pub mod prefix;
pub mod report;
pub mod ruleset;
pub mod setup;
pub mod sources;
pub mod sys;
pub mod wire;
