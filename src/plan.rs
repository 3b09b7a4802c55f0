//! `plan`: config + observed state -> the desired elements of every managed set. Pure.
//!
//! The address rule: an address counts when its link is administratively up, its scope is
//! global or site, it is not link-local (169.254.0.0/16, fe80::/10), and it is neither
//! tentative (IPv6 DAD still running) nor dadfailed.

pub use crate::elements::Desired;

use crate::config::{CgroupSetConfig, Config, DockerSetConfig};
use crate::elements::{Elem, SetId, SetKind};
use crate::event::Address;
use crate::managed::{ContainerForward, OwnedFill, Owner};
use crate::matching;
use crate::observed::Observed;
use crate::prefix::IpPrefix;
use crate::setup::Setup;
use std::collections::BTreeSet;
use std::net::IpAddr;

const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_SITE: u8 = 200;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

/// Published-port elements for every running container, into the map of `kind`. A host port
/// claimed twice goes to the container whose name sorts first, as a map key holds one value.
fn publish_elements(publish: &[&SetId], observed: &Observed) -> Desired {
    let id = |k: SetKind| publish.iter().find(|s| s.kind == k).map(|s| (*s).clone());
    let mut out: Desired = publish.iter().map(|s| ((*s).clone(), BTreeSet::new())).collect();
    let mut claimed: BTreeSet<(SetKind, Option<IpAddr>, crate::inet::L4Proto, u16)> = BTreeSet::new();
    let mut containers: Vec<_> = observed.containers.values().collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    for c in containers {
        let addr4 = c.networks.values().find_map(|n| n.ipv4).map(IpAddr::V4);
        let addr6 = c.networks.values().find_map(|n| n.ipv6).map(IpAddr::V6);
        for p in &c.ports {
            // (map kind, bound host address, container address)
            let targets: Vec<(SetKind, Option<IpAddr>, Option<IpAddr>)> = match p.host_ip {
                None => vec![(SetKind::Publish4, None, addr4), (SetKind::Publish6, None, addr6)],
                Some(IpAddr::V4(h)) if h.is_unspecified() => vec![(SetKind::Publish4, None, addr4)],
                Some(IpAddr::V6(h)) if h.is_unspecified() => vec![(SetKind::Publish6, None, addr6)],
                Some(h @ IpAddr::V4(_)) => vec![(SetKind::PublishBound4, Some(h), addr4)],
                Some(h @ IpAddr::V6(_)) => vec![(SetKind::PublishBound6, Some(h), addr6)],
            };
            for (kind, host, to) in targets {
                let (Some(to), Some(map)) = (to, id(kind)) else { continue };
                if !claimed.insert((kind, host, p.proto, p.host_port)) {
                    continue;
                }
                let elem =
                    Elem::Mapping { host, proto: p.proto, port: p.host_port, to, to_port: p.container_port };
                out.entry(map).or_default().insert(elem);
                let pair = if to.is_ipv4() { SetKind::Pair4 } else { SetKind::Pair6 };
                if let Some(h) = id(pair) {
                    out.entry(h).or_default().insert(Elem::Pair(to, to));
                }
            }
        }
    }
    out
}

/// Whether an address goes into the zone sets (see the module doc).
pub fn address_counts(a: &Address) -> bool {
    let scope_ok = a.scope == RT_SCOPE_UNIVERSE || a.scope == RT_SCOPE_SITE;
    let flags_ok = a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0;
    let link_local = match a.prefix.addr {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => v.segments()[0] & 0xffc0 == 0xfe80,
    };
    scope_ok && flags_ok && !link_local
}

/// The counted addresses of the named interfaces, of one family.
fn addresses<'a>(
    observed: &'a Observed,
    interfaces: impl Iterator<Item = &'a str> + 'a,
    v4: bool,
) -> impl Iterator<Item = &'a Address> + 'a {
    interfaces
        .flat_map(|name| observed.links_named(name))
        .filter(|link| link.up)
        .flat_map(|link| observed.addresses_of(link.index))
        .filter(move |a| address_counts(a) && a.prefix.addr.is_ipv4() == v4)
}

fn zone_elements(config: &Config, zone: &str, set: &SetId, observed: &Observed) -> BTreeSet<Elem> {
    let counted: Vec<&Address> =
        addresses(observed, config.zone_interfaces(zone).into_iter(), set.kind.is_ipv4()).collect();
    if set.kind.is_interval() {
        networks(counted.iter().map(|a| a.prefix))
    } else {
        counted.iter().map(|a| Elem::Addr(a.prefix.addr)).collect()
    }
}

fn docker_elements(entry: &DockerSetConfig, set: &SetId, observed: &Observed) -> BTreeSet<Elem> {
    let m = &entry.matcher;
    observed
        .containers
        .values()
        .filter(|c| matching::matches(m, c))
        .flat_map(|c| matching::networks(m, c))
        .filter_map(|n| if set.kind.is_ipv4() { n.ipv4.map(IpAddr::V4) } else { n.ipv6.map(IpAddr::V6) })
        .map(Elem::Addr)
        .collect()
}

/// Ids of the cgroups a cgroup set takes: a unit glob matching the directory name, or a path
/// glob matching the path below the root, at the set's level when it has one (a cgroup at
/// another depth can never match `socket cgroupv2 level N`).
pub fn cgroup_elements(entry: &CgroupSetConfig, observed: &Observed) -> BTreeSet<Elem> {
    observed
        .cgroups
        .iter()
        .filter(|(path, _)| cgroup_matches(entry, path) && cgroup_at_level(entry, path))
        .map(|(_, id)| Elem::Cgroup(*id))
        .collect()
}

/// Whether a cgroup is at the depth the set's `level` can match (any depth without a level).
pub fn cgroup_at_level(entry: &CgroupSetConfig, path: &str) -> bool {
    entry.level.is_none_or(|l| path.split('/').count() as u32 == l)
}

/// Whether a cgroup path (relative to the root) is named by the entry, whatever its depth.
pub fn cgroup_matches(entry: &CgroupSetConfig, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !path.is_empty()
        && (entry.units.iter().any(|g| matching::glob(g, name))
            || entry.paths.iter().any(|g| matching::glob(g, path)))
}

/// The desired elements of every managed set, each owner filling its own.
pub fn plan(setup: &Setup, observed: &Observed) -> Desired {
    let config = &setup.config;
    let docker = config.docker.as_ref().map(|d| d.sets.as_slice()).unwrap_or_default();
    let mut desired = Desired::new();
    let mut publish = Vec::new();
    let mut owned = Vec::new();
    for (owner, set) in setup.managed.iter() {
        let elems = match owner {
            Owner::Zone(zone) => zone_elements(config, zone, set, observed),
            Owner::Docker(i) => docker.get(*i).map(|d| docker_elements(d, set, observed)).unwrap_or_default(),
            Owner::Cgroup(i) => config
                .cgroups
                .as_ref()
                .and_then(|c| c.sets.get(*i))
                .map(|c| cgroup_elements(c, observed))
                .unwrap_or_default(),
            Owner::Publish => {
                publish.push(set);
                continue;
            }
            Owner::Owned(fill) => {
                owned.push((set, fill));
                continue;
            }
        };
        desired.insert(set.clone(), elems);
    }
    desired.extend(publish_elements(&publish, observed));
    // Owned sets last: copies read the admin sets planned above.
    for (set, fill) in owned {
        let elems = match fill {
            OwnedFill::Static => {
                setup.owned.as_ref().and_then(|o| o.table.elements.get(set)).cloned().unwrap_or_default()
            }
            OwnedFill::Addresses { interfaces } => {
                addresses(observed, interfaces.iter().map(String::as_str), set.kind.is_ipv4())
                    .map(|a| Elem::Addr(a.prefix.addr))
                    .collect()
            }
            OwnedFill::CopyOf(orig) => desired.get(orig).cloned().unwrap_or_default(),
            OwnedFill::Containers(forwards) => container_forwards(config, forwards, observed),
        };
        desired.insert(set.clone(), elems);
    }
    desired
}

/// Map elements for `nat.dnat` entries to containers: each running container's IPv4 address
/// (`container_ns::container_ipv4`: its configured network first).
fn container_forwards(config: &Config, forwards: &[ContainerForward], observed: &Observed) -> BTreeSet<Elem> {
    forwards
        .iter()
        .filter_map(|f| {
            let c = observed.containers.values().find(|c| c.active && c.name == f.container)?;
            let to = crate::container_ns::container_ipv4(config, c)?;
            Some(Elem::PortForward { iface: f.iface, proto: f.proto, port: f.port, to, to_port: f.to_port })
        })
        .collect()
}

/// Interval elements for a list of interface prefixes. nft rejects overlapping intervals,
/// so prefixes inside another one are dropped (prefixes either nest or are disjoint).
fn networks(prefixes: impl Iterator<Item = IpPrefix>) -> BTreeSet<Elem> {
    let mut nets: Vec<IpPrefix> = prefixes.map(|p| IpPrefix { addr: p.network(), len: p.len }).collect();
    nets.sort();
    nets.dedup();
    let mut kept: Vec<IpPrefix> = Vec::new();
    for n in nets {
        if !kept.last().is_some_and(|k| k.contains(&n)) {
            kept.push(n);
        }
    }
    kept.into_iter().map(|p| Elem::Range { start: p.network(), end: p.end_exclusive() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Link};
    use std::path::Path;

    fn config(text: &str) -> Setup {
        Setup::parse(Path::new("t.yaml"), text).unwrap()
    }

    fn addr(index: u32, text: &str, scope: u8, flags: u32) -> Address {
        Address { index, prefix: text.parse().unwrap(), scope, flags }
    }

    fn observed(links: &[(u32, &str, bool)], addrs: Vec<Address>) -> Observed {
        let mut o = Observed::default();
        let links = links
            .iter()
            .map(|(i, n, up)| Link { index: *i, name: n.to_string(), up: *up, carrier: *up })
            .collect();
        o.apply(&Event::NetSnapshot { links, addrs });
        o
    }

    fn elems(d: &Desired, name: &str) -> Vec<String> {
        let (_, set) = d.iter().find(|(k, _)| k.name == name).expect("set planned");
        set.iter().map(|e| e.to_string()).collect()
    }

    const CFG: &str = "interfaces:\n  - { name: eth0, nftables_zone: wan }\n  - { name: eth1, zone: lan }\n  - { name: eth2, zone: lan }\nzones:\n  lan: { networks4_set: lan_nets, networks6_set: lan_nets6 }\n";

    #[test]
    fn addresses_go_to_their_zone_by_family() {
        let o = observed(
            &[(2, "eth0", true), (3, "eth1", true), (4, "other", true)],
            vec![
                addr(2, "203.0.113.5/24", 0, 0),
                addr(2, "2001:db8::5/64", 0, 0),
                addr(3, "192.0.2.1/24", 0, 0),
                addr(4, "198.51.100.1/24", 0, 0),
            ],
        );
        let d = plan(&config(CFG), &o);
        assert_eq!(elems(&d, "wan_ips"), vec!["203.0.113.5"]);
        assert_eq!(elems(&d, "wan_ipv6"), vec!["2001:db8::5"]);
        assert_eq!(elems(&d, "lan_ips"), vec!["192.0.2.1"]);
        assert!(elems(&d, "lan_ipv6").is_empty());
        assert_eq!(elems(&d, "lan_nets"), vec!["192.0.2.0/24"]);
        assert_eq!(d.len(), 6);
    }

    #[test]
    fn the_address_rule() {
        let o = observed(
            &[(2, "eth0", true)],
            vec![
                addr(2, "203.0.113.1/24", 0, 0),   // global: counts
                addr(2, "203.0.113.2/24", 200, 0), // site: counts
                addr(2, "203.0.113.3/24", 253, 0), // link scope: no
                addr(2, "203.0.113.4/24", 254, 0), // host scope: no
                addr(2, "169.254.1.1/16", 0, 0),   // link-local range: no
                addr(2, "fe80::1/64", 0, 0),       // link-local range: no
                addr(2, "2001:db8::1/64", 0, IFA_F_TENTATIVE),
                addr(2, "2001:db8::2/64", 0, IFA_F_DADFAILED),
                addr(2, "2001:db8::3/64", 0, 0x80 | 0x20), // permanent|deprecated: counts
            ],
        );
        let d = plan(&config(CFG), &o);
        assert_eq!(elems(&d, "wan_ips"), vec!["203.0.113.1", "203.0.113.2"]);
        assert_eq!(elems(&d, "wan_ipv6"), vec!["2001:db8::3"]);
    }

    #[test]
    fn down_links_contribute_nothing_and_renames_follow_names() {
        let o = observed(&[(2, "eth0", false)], vec![addr(2, "203.0.113.1/24", 0, 0)]);
        assert!(elems(&plan(&config(CFG), &o), "wan_ips").is_empty());
        let o = observed(&[(2, "eth1", true)], vec![addr(2, "203.0.113.1/24", 0, 0)]);
        let d = plan(&config(CFG), &o);
        assert!(elems(&d, "wan_ips").is_empty());
        assert_eq!(elems(&d, "lan_ips"), vec!["203.0.113.1"]);
    }

    #[test]
    fn containers_fill_docker_sets() {
        use crate::wire::docker::{Container, NetAddrs};
        let cfg = config(
            "docker:\n  sets:\n    - { ipv4_set: web4, ipv6_set: web6, match: { labels: { app: web }, networks: [front] } }\n    - { ipv4_set: all4 }\n",
        );
        let c = |id: &str, app: &str, nets: &[(&str, &str, Option<&str>)]| Container {
            id: id.into(),
            name: id.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            networks: nets
                .iter()
                .map(|(n, v4, v6)| {
                    (n.to_string(), NetAddrs { ipv4: v4.parse().ok(), ipv6: v6.and_then(|a| a.parse().ok()) })
                })
                .collect(),
            ports: vec![],
            active: true,
            pid: 0,
        };
        let mut o = Observed::default();
        o.apply(&Event::DockerSnapshot(vec![
            c("a", "web", &[("front", "198.18.1.2", Some("2001:db8:f::2")), ("back", "198.18.2.2", None)]),
            c("b", "db", &[("back", "198.18.2.3", None)]),
            Container { active: false, ..c("c", "web", &[("front", "198.18.1.9", None)]) },
        ]));
        let d = plan(&cfg, &o);
        assert_eq!(elems(&d, "web4"), vec!["198.18.1.2"]);
        assert_eq!(elems(&d, "web6"), vec!["2001:db8:f::2"]);
        assert_eq!(elems(&d, "all4"), vec!["198.18.1.2", "198.18.2.2", "198.18.2.3"]);
        let web4 = d.keys().find(|k| k.name == "web4").unwrap();
        assert!(cfg.managed.from_containers(web4));
        assert_eq!(cfg.managed.iter().filter(|(o, _)| matches!(o, Owner::Docker(_))).count(), 3);
    }

    #[test]
    fn dnat_to_a_container_follows_its_address_on_the_configured_network() {
        use crate::wire::docker::{Container, NetAddrs};
        let cfg = config(
            "docker:\n  networks: { backend: { subnet: 198.18.104.0/24 } }\n  containers: { lb: { networks: { backend: 198.18.104.2 } } }\nnat:\n  dnat:\n    - { in_interface: wg0, proto: tcp, port: 80, to: \"container:lb:8080\" }\n",
        );
        let lb = |nets: &[(&str, &str)]| Container {
            id: "c1".into(),
            name: "lb".into(),
            labels: Default::default(),
            networks: nets
                .iter()
                .map(|(n, a)| (n.to_string(), NetAddrs { ipv4: a.parse().ok(), ipv6: None }))
                .collect(),
            ports: vec![],
            active: true,
            pid: 0,
        };
        let map = |o: &Observed| -> Vec<String> {
            plan(&cfg, o)
                .into_iter()
                .filter(|(s, _)| s.name == "dnat4_containers")
                .flat_map(|(_, e)| e.into_iter().map(|e| e.to_string()))
                .collect()
        };
        let mut o = Observed::default();
        o.apply(&Event::DockerSnapshot(vec![lb(&[("a_first", "172.17.0.2"), ("backend", "198.18.104.2")])]));
        assert_eq!(map(&o), vec!["\"wg0\" . tcp . 80 : 198.18.104.2 . 8080"]);
        o.apply(&Event::ContainerUp(lb(&[("a_first", "172.17.0.2")])));
        assert_eq!(
            map(&o),
            vec!["\"wg0\" . tcp . 80 : 172.17.0.2 . 8080"],
            "no configured network: its first one"
        );
        o.apply(&Event::ContainerGone("c1".into()));
        assert!(map(&o).is_empty());
        // A range or hairpin to a container is refused with the entry named.
        let err = Setup::parse(
            Path::new("t.yaml"),
            "nat:\n  dnat:\n    - { in_interface: wg0, port: 80-90, to: \"container:lb\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nat.dnat[0]") && err.contains("single ports only"), "{err}");
    }

    #[test]
    fn published_ports_fill_the_owned_maps() {
        use crate::inet::L4Proto as Proto;
        use crate::wire::docker::{Container, NetAddrs, PortMap};
        let cfg = config("docker: { publish: true }\n");
        let c = |name: &str, v4: &str, v6: Option<&str>, ports: Vec<PortMap>| Container {
            id: name.into(),
            name: name.into(),
            labels: Default::default(),
            networks: [(
                "n".to_string(),
                NetAddrs { ipv4: v4.parse().ok(), ipv6: v6.and_then(|a| a.parse().ok()) },
            )]
            .into(),
            ports,
            active: true,
            pid: 0,
        };
        let pm = |host_ip: Option<&str>, host_port, container_port, proto| PortMap {
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port,
            container_port,
            proto,
        };
        let mut o = Observed::default();
        o.apply(&Event::DockerSnapshot(vec![
            // `-p 8080:80` as Docker reports it: one IPv4 and one IPv6 wildcard binding.
            c(
                "a-web",
                "198.18.9.2",
                Some("2001:db8:9::2"),
                vec![pm(Some("0.0.0.0"), 8080, 80, Proto::Tcp), pm(Some("::"), 8080, 80, Proto::Tcp)],
            ),
            // The same host port again: the first name keeps it.
            c(
                "b-web",
                "198.18.9.3",
                None,
                vec![pm(Some("0.0.0.0"), 8080, 81, Proto::Tcp), pm(None, 5353, 53, Proto::Udp)],
            ),
            // Bound to one host address.
            c("c-api", "198.18.9.4", None, vec![pm(Some("203.0.113.1"), 443, 8443, Proto::Tcp)]),
        ]));
        let d = plan(&cfg, &o);
        assert_eq!(
            elems(&d, "publish4"),
            vec!["tcp . 8080 : 198.18.9.2 . 80", "udp . 5353 : 198.18.9.3 . 53"]
        );
        assert_eq!(elems(&d, "publish6"), vec!["tcp . 8080 : 2001:db8:9::2 . 80"]);
        assert_eq!(elems(&d, "publish4_bound"), vec!["203.0.113.1 . tcp . 443 : 198.18.9.4 . 8443"]);
        assert!(elems(&d, "publish6_bound").is_empty());
        assert_eq!(
            elems(&d, "hairpin4"),
            vec!["198.18.9.2 . 198.18.9.2", "198.18.9.3 . 198.18.9.3", "198.18.9.4 . 198.18.9.4"]
        );
        assert_eq!(elems(&d, "hairpin6"), vec!["2001:db8:9::2 . 2001:db8:9::2"]);
        let publish4 = d.keys().find(|k| k.name == "publish4").unwrap();
        assert_eq!(publish4.table.to_string(), "inet netmgrd");
        assert!(cfg.managed.from_containers(publish4));
    }

    #[test]
    fn zones_named_docker_or_publish_keep_their_addresses() {
        let cfg = config("interfaces:\n  - { name: eth0, zone: docker }\n  - { name: eth1, zone: publish }\ndocker: { publish: true, sets: [{ ipv4_set: web4 }] }\n");
        let o = observed(
            &[(2, "eth0", true), (3, "eth1", true)],
            vec![addr(2, "203.0.113.9/24", 0, 0), addr(3, "2001:db8::9/64", 0, 0)],
        );
        let d = plan(&cfg, &o);
        assert_eq!(elems(&d, "docker_ips"), vec!["203.0.113.9"]);
        assert_eq!(elems(&d, "publish_ipv6"), vec!["2001:db8::9"]);
        let docker_ips = d.keys().find(|k| k.name == "docker_ips").unwrap();
        assert!(!cfg.managed.from_containers(docker_ips), "reconcile must not hold it back for Docker");
    }

    #[test]
    fn cgroups_by_unit_name_or_path_at_the_sets_level() {
        let cfg = config("cgroups:\n  sets:\n    - { set: mail, units: [postfix.service, \"app-*.scope\"] }\n    - { set: sys, paths: [\"system.slice/*.service\"], level: 2 }\n");
        let mut o = Observed::default();
        o.apply(&Event::CgroupSnapshot(vec![
            ("system.slice".into(), 10),
            ("system.slice/postfix.service".into(), 11),
            ("system.slice/sshd.service".into(), 12),
            ("user.slice/user-1000.slice/app-firefox.scope".into(), 13),
            ("system.slice/sshd.service/deep".into(), 14),
        ]));
        let d = plan(&cfg, &o);
        assert_eq!(elems(&d, "mail"), vec!["11", "13"]);
        assert_eq!(elems(&d, "sys"), vec!["11", "12"], "level 2 only: not deep/, not the slice");
        o.apply(&Event::CgroupRemoved { path: "system.slice".into() });
        assert!(elems(&plan(&cfg, &o), "sys").is_empty(), "a removed parent takes its children");
    }

    #[test]
    fn networks_merge_nested_prefixes() {
        let o = observed(
            &[(3, "eth1", true), (4, "eth2", true)],
            vec![
                addr(3, "192.0.2.1/24", 0, 0),
                addr(3, "192.0.2.129/25", 0, 0),
                addr(4, "192.0.2.7/24", 0, 0),
                addr(4, "198.51.100.9/32", 0, 0),
                addr(4, "2001:db8:1::1/48", 0, 0),
                addr(4, "2001:db8:1:2::1/64", 0, 0),
            ],
        );
        let d = plan(&config(CFG), &o);
        assert_eq!(elems(&d, "lan_nets"), vec!["192.0.2.0/24", "198.51.100.9/32"]);
        assert_eq!(elems(&d, "lan_nets6"), vec!["2001:db8:1::/48"]);
        assert_eq!(elems(&d, "lan_ips").len(), 4);
    }
}
