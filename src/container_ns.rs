//! What netmgrd sets up inside containers' network namespaces (pure): for each running
//! container named by `nat.dnat[].in_container` or with `docker.containers.NAME.routes`, a
//! small owned table (DNAT of the entries, masquerade of the translated flows so the replies
//! come back through it) and its routes. A target `container:NAME` is that container's current
//! IPv4 address; a restart (new pid, new namespace) or a moved target gives another setup, which
//! the daemon applies again.

use crate::config::{Config, DnatTarget};
use crate::elements::{Family, TableRef};
use crate::inet::IpFamily;
use crate::observed::Observed;
use crate::ruleset::{ChainSpec, Hook, OwnedTable, RuleSpec, Stmt};
use crate::wire::docker::Container;
use crate::wire::route::{Route, AF_INET, AF_INET6, RTN_UNICAST, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One container's setup.
#[derive(Clone, Debug, PartialEq)]
pub struct NsSetup {
    pub container: String,
    pub pid: u32,
    /// `None`: routes only.
    pub table: Option<OwnedTable>,
    pub routes: Vec<Route>,
}

/// The table netmgrd owns inside a container.
pub fn ns_table() -> TableRef {
    TableRef { family: Family::Inet, name: "netmgrd".into() }
}

/// A running container's IPv4 address: on the network `docker.containers` gives it first,
/// else its first network (by name).
pub fn container_ipv4(config: &Config, c: &Container) -> Option<IpAddr> {
    let preferred = config.docker.as_ref().and_then(|d| d.containers.get(&c.name));
    let on_preferred =
        preferred.and_then(|p| p.networks.keys().find_map(|n| c.networks.get(n).and_then(|a| a.ipv4)));
    on_preferred.or_else(|| c.networks.values().find_map(|a| a.ipv4)).map(IpAddr::V4)
}

fn running<'a>(observed: &'a Observed, name: &str) -> Option<&'a Container> {
    observed.containers.values().find(|c| c.active && c.name == name)
}

/// Every container setup wanted now, by container id.
pub fn plan(config: &Config, observed: &Observed) -> BTreeMap<String, NsSetup> {
    let mut out = BTreeMap::new();
    let dnat = config.nat.as_ref().map(|n| n.dnat.as_slice()).unwrap_or_default();
    let docker = config.docker.as_ref();
    for c in observed.containers.values().filter(|c| c.active && c.pid > 0) {
        let mut rules = Vec::new();
        for (i, r) in
            dnat.iter().enumerate().filter(|(_, r)| r.in_container.as_deref() == Some(c.name.as_str()))
        {
            let (to, port) = match &r.to {
                DnatTarget::Addr(t) => (Some(t.addr), t.port),
                DnatTarget::Container { name, port } => {
                    (running(observed, name).and_then(|t| container_ipv4(config, t)), *port)
                }
            };
            // The target is not running: no rule until it is.
            let Some(to) = to else { continue };
            let family = IpFamily::of(&to);
            for &proto in r.proto.protocols() {
                for &(a, b) in &r.port.0 {
                    rules.push(RuleSpec {
                        stmts: vec![
                            Stmt::NfProto(family),
                            Stmt::L4Proto(proto),
                            Stmt::Dport(a, b),
                            Stmt::Dnat { to, port },
                        ],
                        comment: format!("nat.dnat[{i}] in {}", c.name),
                    });
                }
            }
        }
        let routes: Vec<Route> = docker
            .and_then(|d| d.containers.get(&c.name))
            .map(|cc| {
                cc.routes
                    .iter()
                    .map(|r| Route {
                        table: RT_TABLE_MAIN,
                        dst: Some(crate::prefix::IpPrefix { addr: r.to.network(), len: r.to.len }),
                        family: if r.to.addr.is_ipv4() { AF_INET } else { AF_INET6 },
                        gateway: Some(r.via),
                        oif: None,
                        protocol: crate::policy::PROTOCOL,
                        scope: RT_SCOPE_UNIVERSE,
                        kind: RTN_UNICAST,
                        metric: None,
                        prefsrc: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if rules.is_empty() && routes.is_empty() {
            continue;
        }
        let table = (!rules.is_empty()).then(|| {
            let chain = |name, hook, priority, rules| ChainSpec {
                name,
                hook,
                priority,
                nat: true,
                policy_drop: false,
                rules,
            };
            OwnedTable {
                table: ns_table(),
                sets: Vec::new(),
                elements: Default::default(),
                chains: vec![
                    chain("prerouting", Hook::Prerouting, -100, rules.clone()),
                    chain("output", Hook::Output, -100, rules),
                    chain(
                        "postrouting",
                        Hook::Postrouting,
                        100,
                        vec![RuleSpec {
                            stmts: vec![Stmt::CtStatusDnat, Stmt::Masquerade],
                            comment: "replies of translated flows come back through this container".into(),
                        }],
                    ),
                ],
            }
        });
        out.insert(c.id.clone(), NsSetup { container: c.name.clone(), pid: c.pid, table, routes });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::setup::Setup;
    use crate::wire::docker::NetAddrs;
    use std::path::Path;

    const CFG: &str = "docker:\n  networks: { backend: { subnet: 198.18.104.0/24 } }\n  containers:\n    lb: { networks: { backend: 198.18.104.2 } }\n    app1: { networks: { backend: 198.18.104.3 }, routes: [{ to: 203.0.113.0/24, via: 198.18.104.1 }] }\nnat:\n  dnat:\n    - { in_container: lb, proto: tcp, port: 8080, to: \"container:app1:80\" }\n";

    fn c(name: &str, pid: u32, ip: &str) -> Container {
        Container {
            id: format!("id-{name}"),
            name: name.into(),
            labels: Default::default(),
            networks: [("backend".to_string(), NetAddrs { ipv4: ip.parse().ok(), ipv6: None })].into(),
            ports: vec![],
            active: true,
            pid,
        }
    }

    #[test]
    fn dnat_in_the_container_follows_the_target_and_routes_go_where_asked() {
        let setup = Setup::parse(Path::new("t.yaml"), CFG).unwrap();
        let mut o = Observed::default();
        o.apply(&Event::DockerSnapshot(vec![c("lb", 100, "198.18.104.2"), c("app1", 200, "198.18.104.3")]));
        let p = plan(&setup.config, &o);
        let lb = &p["id-lb"];
        assert_eq!(lb.pid, 100);
        let text = lb.table.as_ref().unwrap().render();
        assert!(text.contains("th dport 8080 dnat ip to 198.18.104.3:80"), "{text}");
        assert!(text.contains("masquerade"), "{text}");
        let app = &p["id-app1"];
        assert!(app.table.is_none());
        assert_eq!(app.routes.len(), 1);
        assert_eq!(app.routes[0].gateway, Some("198.18.104.1".parse().unwrap()));
        // A restart: new pid, new setup. The target moves: the rule follows.
        o.apply(&Event::ContainerUp(c("lb", 101, "198.18.104.2")));
        o.apply(&Event::ContainerUp(c("app1", 201, "198.18.104.9")));
        let p2 = plan(&setup.config, &o);
        assert_eq!(p2["id-lb"].pid, 101);
        assert!(p2["id-lb"].table.as_ref().unwrap().render().contains("198.18.104.9:80"));
        // The target stopped: lb's table has no rule left, so no setup for lb.
        o.apply(&Event::ContainerGone("id-app1".into()));
        assert!(!plan(&setup.config, &o).contains_key("id-lb"));
    }
}
