//! Link states, computed from what rtnetlink says (pure). The rule, in order:
//!
//! - `off`: administratively down (no `IFF_UP`), or gone;
//! - `no-carrier`: up, lower layer down (no `IFF_LOWER_UP`);
//! - `carrier`: carrier, no address (tentative IPv6 addresses do not count);
//! - `degraded`: only link-local (scope link) or host-scope addresses;
//! - `routable`: at least one address of global or site scope;
//! - `configured`: routable, and netmgrd's last reconcile applied everything it manages.
//!
//! The `manager` state is the best state of all links but loopback.

use crate::wire::rtnetlink::{Address, Link};
use serde::Serialize;

/// `IFA_F_TENTATIVE`: an IPv6 address still in duplicate address detection.
const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFF_LOOPBACK` links are left out of the manager state; lo is recognised by name.
const LOOPBACK: &str = "lo";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    Off,
    NoCarrier,
    Carrier,
    Degraded,
    Routable,
    Configured,
}

impl LinkState {
    /// The name of the state, and of its hook directory without `.d`.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Off => "off",
            LinkState::NoCarrier => "no-carrier",
            LinkState::Carrier => "carrier",
            LinkState::Degraded => "degraded",
            LinkState::Routable => "routable",
            LinkState::Configured => "configured",
        }
    }
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of `link` with `addrs` (its addresses); `applied`: netmgrd's last reconcile
/// succeeded, so a routable link is `configured`.
pub fn link_state<'a>(link: &Link, addrs: impl IntoIterator<Item = &'a Address>, applied: bool) -> LinkState {
    if !link.up {
        return LinkState::Off;
    }
    if !link.carrier {
        return LinkState::NoCarrier;
    }
    let mut best = LinkState::Carrier;
    for a in addrs.into_iter().filter(|a| a.flags & IFA_F_TENTATIVE == 0) {
        // 0 universe (global), 200 site; 253 link, 254 host.
        let s = if a.scope < 253 { LinkState::Routable } else { LinkState::Degraded };
        best = best.max(s);
    }
    if best == LinkState::Routable && applied {
        LinkState::Configured
    } else {
        best
    }
}

/// The best state over all links but loopback (`off` with none).
pub fn manager_state<'a>(links: impl IntoIterator<Item = (&'a Link, LinkState)>) -> LinkState {
    links.into_iter().filter(|(l, _)| l.name != LOOPBACK).map(|(_, s)| s).max().unwrap_or(LinkState::Off)
}

/// One link's state change, with what hooks are told about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The link's name; `None` for the manager state (all links).
    pub link: Option<String>,
    pub index: u32,
    pub state: LinkState,
    /// `None` at start (netmgrd did not know the link before).
    pub old_state: Option<LinkState>,
    pub zone: Option<String>,
    /// Its addresses as prefixes (`192.0.2.1/24`).
    pub addresses: Vec<String>,
    /// Its main-table routes (`default via 198.51.100.2`, `198.51.100.0/24`), known for
    /// `policy_routing` interfaces.
    pub routes: Vec<String>,
    /// Not a state change: the link's routes changed (`routes.d`).
    pub routes_changed: bool,
}

impl Transition {
    /// The hook directory this transition runs: `<state>.d`, or `manager.d`.
    pub fn dir_name(&self) -> String {
        match self.link {
            Some(_) if self.routes_changed => "routes.d".to_string(),
            Some(_) => format!("{}.d", self.state.name()),
            None => "manager.d".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::IpPrefix;

    fn link(up: bool, carrier: bool) -> Link {
        Link { index: 3, name: "eth1".into(), up, carrier }
    }

    fn addr(p: &str, scope: u8, flags: u32) -> Address {
        Address { index: 3, prefix: p.parse::<IpPrefix>().unwrap(), scope, flags }
    }

    #[test]
    fn the_rule_in_order() {
        let global = addr("192.0.2.1/24", 0, 0);
        let ll = addr("fe80::1/64", 253, 0);
        assert_eq!(link_state(&link(false, true), [&global], true), LinkState::Off);
        assert_eq!(link_state(&link(true, false), [&global], true), LinkState::NoCarrier);
        assert_eq!(link_state(&link(true, true), [], true), LinkState::Carrier);
        assert_eq!(link_state(&link(true, true), [&ll], true), LinkState::Degraded);
        assert_eq!(link_state(&link(true, true), [&ll, &global], false), LinkState::Routable);
        assert_eq!(link_state(&link(true, true), [&ll, &global], true), LinkState::Configured);
        // A tentative IPv6 address (DAD running) does not count yet.
        let tentative = addr("2001:db8::1/64", 0, IFA_F_TENTATIVE);
        assert_eq!(link_state(&link(true, true), [&tentative], true), LinkState::Carrier);
        assert_eq!(link_state(&link(true, true), [&addr("127.0.0.1/8", 254, 0)], true), LinkState::Degraded);
    }

    #[test]
    fn manager_is_the_best_link_but_loopback() {
        let lo = Link { index: 1, name: "lo".into(), up: true, carrier: true };
        let (a, b) = (link(true, true), link(false, false));
        assert_eq!(manager_state([(&lo, LinkState::Configured), (&b, LinkState::Off)]), LinkState::Off);
        assert_eq!(manager_state([(&a, LinkState::Degraded), (&b, LinkState::Off)]), LinkState::Degraded);
        assert_eq!(manager_state([]), LinkState::Off);
        assert_eq!(LinkState::NoCarrier.name(), "no-carrier");
    }
}
