//! netmgrd keeps nftables sets and NAT in step with a router's interface addresses and
//! containers.
//!
//! Data flow, one `poll(2)` loop, one thread:
//!
//! ```text
//! rtnetlink ─┐  sources         core (pure)                                   edges
//! docker    ─┼─> decode -> Event -> Observed ─┐
//! control   ─┤                                ├─> plan = Desired ─> diff(Desired, Applied)
//! signals   ─┘      Config -> Setup ──────────┘   (managed sets,      └─> Kernel: one batch
//!                            (owned table)         owned table)
//! ```
//!
//! Sources (`sources/`) turn bytes into [`event::Event`]s and never touch nftables. A config
//! becomes a [`setup::Setup`] once per load: its managed sets with typed owners
//! ([`managed`]) and the owned table ([`owned`], as [`ruleset`] data). [`plan`] and [`diff`]
//! are pure; [`daemon`] runs a turn against the [`kernel::Kernel`] trait, real ([`nft`],
//! [`sys`]) or in memory ([`kernel::fake`]). Replies are typed ([`report`]).
//!
//! ```
//! use netmgrd::prefix::IpPrefix;
//! let p: IpPrefix = "192.0.2.77/24".parse().unwrap();
//! assert_eq!(p.network().to_string(), "192.0.2.0");
//! ```

pub mod config;
pub mod container_ns;
pub mod daemon;
pub mod diff;
pub mod docker_networks;
pub mod elements;
pub mod event;
pub mod event_loop;
pub mod fuzz;
pub mod inet;
pub mod kernel;
pub mod link_state;
pub mod logging;
pub mod managed;
pub mod matching;
pub mod metrics;
pub mod nft;
pub mod observed;
pub mod owned;
pub mod plan;
pub mod policy;
pub mod prefix;
pub mod report;
pub mod ruleset;
pub mod scnpm;
pub mod setup;
pub mod sources;
pub mod sys;
pub mod wire;
