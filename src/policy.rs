//! Per-interface policy routing, planned (pure): for each routable address A of a configured
//! interface, rules `from A lookup T` and `to A lookup T`, and in table T the interface's
//! prefix routes and its default route (copied from the main table, or a fixed gateway).
//! Everything netmgrd adds carries its own route protocol number, so what a crashed run left
//! is recognised and nobody else's rules or routes are touched.

use crate::config::PolicyGateway;
use crate::prefix::IpPrefix;
use crate::wire::route::{Route, Rule, AF_INET, AF_INET6, RTN_UNICAST, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The `protocol` of netmgrd's rules and routes (`ip rule/route ... proto 233`).
pub const PROTOCOL: u8 = 233;
/// Table default: 9999 + ifindex (network-event-broker's convention).
pub const TABLE_BASE: u32 = 9999;

/// One configured interface as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLink {
    pub interface: String,
    pub index: u32,
    pub table: u32,
    pub priority: u32,
    pub gateway: PolicyGateway,
    /// Its routable addresses (global or site scope, DAD done).
    pub addresses: Vec<IpPrefix>,
}

/// What identifies a route for netmgrd: fields the kernel may fill in (metric, source) are not
/// part of it.
pub type RouteKey = (u32, u8, Option<IpPrefix>, Option<IpAddr>, Option<u32>);
/// What identifies a rule.
pub type RuleKey = (u8, u32, u32, Option<IpPrefix>, Option<IpPrefix>);

pub fn route_key(r: &Route) -> RouteKey {
    (r.table, r.family, r.dst, r.gateway, r.oif)
}

pub fn rule_key(r: &Rule) -> RuleKey {
    (r.family, r.priority, r.table, r.src, r.dst)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub rules: BTreeMap<RuleKey, Rule>,
    pub routes: BTreeMap<RouteKey, Route>,
}

fn family_of(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// The rules and routes `links` need, given the main table's routes (`main`).
pub fn plan<'a>(links: &[PolicyLink], main: impl IntoIterator<Item = &'a Route> + Clone) -> Desired {
    let mut d = Desired::default();
    for l in links {
        let families: Vec<u8> = [AF_INET, AF_INET6]
            .into_iter()
            .filter(|f| l.addresses.iter().any(|a| family_of(a.addr) == *f))
            .collect();
        for a in &l.addresses {
            let host = IpPrefix::new(a.addr, if a.addr.is_ipv4() { 32 } else { 128 });
            let base = Rule {
                family: family_of(a.addr),
                priority: l.priority,
                table: l.table,
                src: None,
                dst: None,
                protocol: PROTOCOL,
            };
            for rule in [Rule { src: host, ..base.clone() }, Rule { dst: host, ..base }] {
                d.rules.insert(rule_key(&rule), rule);
            }
        }
        let own = main.clone().into_iter().filter(|r| {
            r.table == RT_TABLE_MAIN
                && r.oif == Some(l.index)
                && r.kind == RTN_UNICAST
                && families.contains(&r.family)
        });
        let fixed = match l.gateway {
            PolicyGateway::Fixed(g) => Some(g),
            PolicyGateway::Auto => None,
        };
        // Per family, the main table's default route with the lowest metric.
        let mut defaults: BTreeMap<u8, &Route> = BTreeMap::new();
        for r in own {
            if r.dst.is_some() {
                if r.gateway.is_none() {
                    let copy = Route { table: l.table, protocol: PROTOCOL, ..r.clone() };
                    d.routes.insert(route_key(&copy), copy);
                }
            } else if fixed.is_none_or(|g| family_of(g) != r.family) {
                let best = defaults.entry(r.family).or_insert(r);
                if r.metric.unwrap_or(0) < best.metric.unwrap_or(0) {
                    *best = r;
                }
            }
        }
        for r in defaults.values() {
            let copy =
                Route { table: l.table, protocol: PROTOCOL, metric: None, prefsrc: None, ..(*r).clone() };
            d.routes.insert(route_key(&copy), copy);
        }
        if let Some(g) = fixed.filter(|g| families.contains(&family_of(*g))) {
            let r = Route {
                table: l.table,
                dst: None,
                family: family_of(g),
                gateway: Some(g),
                oif: Some(l.index),
                protocol: PROTOCOL,
                scope: RT_SCOPE_UNIVERSE,
                kind: RTN_UNICAST,
                metric: None,
                prefsrc: None,
            };
            d.routes.insert(route_key(&r), r);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::route::{RTPROT_KERNEL, RT_SCOPE_LINK};

    fn link(gateway: PolicyGateway, addrs: &[&str]) -> PolicyLink {
        PolicyLink {
            interface: "eth1".into(),
            index: 3,
            table: 10002,
            priority: 1000,
            gateway,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn main_route(dst: Option<&str>, gw: Option<&str>, oif: u32, metric: u32) -> Route {
        let dst: Option<IpPrefix> = dst.map(|d| d.parse().unwrap());
        let family = if dst.map_or(gw.is_some_and(|g| g.contains('.')), |d| d.addr.is_ipv4()) {
            AF_INET
        } else {
            AF_INET6
        };
        Route {
            table: RT_TABLE_MAIN,
            dst,
            family,
            gateway: gw.map(|g| g.parse().unwrap()),
            oif: Some(oif),
            protocol: RTPROT_KERNEL,
            scope: if gw.is_some() { RT_SCOPE_UNIVERSE } else { RT_SCOPE_LINK },
            kind: RTN_UNICAST,
            metric: Some(metric),
            prefsrc: None,
        }
    }

    #[test]
    fn rules_per_address_and_the_interfaces_routes_in_its_table() {
        let main = vec![
            main_route(Some("198.51.100.0/24"), None, 3, 0),
            main_route(None, Some("198.51.100.2"), 3, 200),
            main_route(None, Some("192.0.2.2"), 2, 100), // another interface's default
            main_route(Some("2001:db8:1::/64"), None, 3, 256),
            main_route(None, Some("2001:db8:1::2"), 3, 1024),
        ];
        let d = plan(&[link(PolicyGateway::Auto, &["198.51.100.1/24", "2001:db8:1::1/64"])], &main);
        assert_eq!(d.rules.len(), 4);
        assert!(d.rules.values().all(|r| r.table == 10002 && r.priority == 1000 && r.protocol == PROTOCOL));
        assert!(d.rules.values().any(|r| r.src == Some("198.51.100.1/32".parse().unwrap())));
        assert!(d.rules.values().any(|r| r.dst == Some("2001:db8:1::1/128".parse().unwrap())));
        let gateways: Vec<_> =
            d.routes.values().filter(|r| r.dst.is_none()).map(|r| r.gateway.unwrap().to_string()).collect();
        assert_eq!(gateways, vec!["198.51.100.2", "2001:db8:1::2"]);
        assert_eq!(d.routes.len(), 4, "{:?}", d.routes);
        assert!(d.routes.values().all(|r| r.table == 10002 && r.oif == Some(3) && r.protocol == PROTOCOL));
    }

    #[test]
    fn a_fixed_gateway_only_for_its_family_and_nothing_without_addresses() {
        let main = vec![
            main_route(Some("198.51.100.0/24"), None, 3, 0),
            main_route(None, Some("198.51.100.9"), 3, 50),
        ];
        let d =
            plan(&[link(PolicyGateway::Fixed("198.51.100.2".parse().unwrap()), &["198.51.100.1/24"])], &main);
        let gateways: Vec<_> = d.routes.values().filter_map(|r| r.gateway).map(|g| g.to_string()).collect();
        assert_eq!(gateways, vec!["198.51.100.2"]);
        // An IPv6 gateway with only IPv4 addresses: IPv4 stays auto.
        let d = plan(
            &[link(PolicyGateway::Fixed("2001:db8:1::2".parse().unwrap()), &["198.51.100.1/24"])],
            &main,
        );
        let gateways: Vec<_> = d.routes.values().filter_map(|r| r.gateway).map(|g| g.to_string()).collect();
        assert_eq!(gateways, vec!["198.51.100.9"]);
        assert_eq!(plan(&[link(PolicyGateway::Auto, &[])], &main), Desired::default());
    }
}
