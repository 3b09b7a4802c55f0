//! Declarative Docker networks and fixed container addresses, planned (pure): what the Engine
//! has (networks, running containers) against `docker.networks` / `docker.containers` gives
//! the requests to make and the problems to report. netmgrd creates missing networks, never
//! changes or deletes a network it did not create (its label says which), and deletes its own
//! only when the config drops them and no container uses them.

use crate::config::DockerConfig;
use crate::prefix::IpPrefix;
use crate::wire::docker::{Container, EngineNetwork};
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetAction {
    /// `owner`: the label value that marks it as this netmgrd's (its config file).
    Create {
        owner: String,
        name: String,
        subnet: IpPrefix,
        gateway: Option<IpAddr>,
        ipv6_subnet: Option<IpPrefix>,
    },
    Delete {
        id: String,
        name: String,
    },
    /// Connect a running container to a network with a fixed address.
    Connect {
        network: String,
        network_id: String,
        container: String,
        container_id: String,
        ip: IpAddr,
    },
}

impl std::fmt::Display for NetAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetAction::Create { name, subnet, .. } => write!(f, "create network {name} ({subnet})"),
            NetAction::Delete { name, .. } => write!(f, "delete network {name}"),
            NetAction::Connect { network, container, ip, .. } => {
                write!(f, "connect {container} to {network} as {ip}")
            }
        }
    }
}

/// The requests to make, and what is wrong that netmgrd will not change. `owner` names this
/// netmgrd (its config file): only networks with that label are its own.
pub fn plan(
    cfg: &DockerConfig,
    owner: &str,
    networks: &[EngineNetwork],
    containers: &[&Container],
) -> (Vec<NetAction>, Vec<String>) {
    let mut actions = Vec::new();
    let mut problems = Vec::new();
    for (name, want) in &cfg.networks {
        match networks.iter().find(|n| n.name == *name) {
            None => actions.push(NetAction::Create {
                owner: owner.to_string(),
                name: name.clone(),
                subnet: want.subnet,
                gateway: want.gateway,
                ipv6_subnet: want.ipv6_subnet,
            }),
            Some(n) => {
                let same =
                    |p: &IpPrefix| n.subnets.iter().any(|s| s.network() == p.network() && s.len == p.len);
                let mut missing: Vec<String> = Vec::new();
                if !same(&want.subnet) {
                    missing.push(want.subnet.to_string());
                }
                if let Some(p6) = want.ipv6_subnet.filter(|p| !same(p)) {
                    missing.push(p6.to_string());
                }
                if !missing.is_empty() {
                    let have: Vec<String> = n.subnets.iter().map(|s| s.to_string()).collect();
                    problems.push(format!(
                        "network {name} exists with subnet {} (config: {}); it is left as it is",
                        if have.is_empty() { "none".to_string() } else { have.join(", ") },
                        missing.join(", ")
                    ));
                }
            }
        }
    }
    // The Engine refuses to delete a network in use (the list does not say who uses it).
    for n in
        networks.iter().filter(|n| n.owner.as_deref() == Some(owner) && !cfg.networks.contains_key(&n.name))
    {
        actions.push(NetAction::Delete { id: n.id.clone(), name: n.name.clone() });
    }
    for (cname, c) in &cfg.containers {
        let Some(running) = containers.iter().find(|k| k.active && k.name == *cname) else { continue };
        for (net, ip) in &c.networks {
            let Some(n) = networks.iter().find(|n| n.name == *net) else { continue };
            let have = running.networks.get(net);
            let matches = have.is_some_and(|a| match ip {
                IpAddr::V4(v4) => a.ipv4 == Some(*v4),
                IpAddr::V6(v6) => a.ipv6 == Some(*v6),
            });
            if matches {
                continue;
            }
            match have {
                Some(a) => problems.push(format!(
                    "{cname} is on {net} as {} (config: {ip}); reconnect it to change the address",
                    a.ipv4.map(|v| v.to_string()).or(a.ipv6.map(|v| v.to_string())).unwrap_or_default()
                )),
                None => actions.push(NetAction::Connect {
                    network: net.clone(),
                    network_id: n.id.clone(),
                    container: cname.clone(),
                    container_id: running.id.clone(),
                    ip: *ip,
                }),
            }
        }
    }
    (actions, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DockerContainerConfig, DockerNetworkConfig};
    use crate::wire::docker::NetAddrs;

    fn cfg() -> DockerConfig {
        let mut c = DockerConfig::default();
        c.networks.insert(
            "backend".into(),
            DockerNetworkConfig {
                subnet: "198.18.104.0/24".parse().unwrap(),
                gateway: None,
                ipv6_subnet: None,
            },
        );
        let mut lb = DockerContainerConfig::default();
        lb.networks.insert("backend".into(), "198.18.104.2".parse().unwrap());
        c.containers.insert("lb".into(), lb);
        c
    }

    const ME: &str = "/etc/netmgrd/config.yaml";

    fn net(name: &str, subnet: &str, owner: Option<&str>) -> EngineNetwork {
        EngineNetwork {
            id: format!("id-{name}"),
            name: name.into(),
            subnets: vec![subnet.parse().unwrap()],
            owner: owner.map(String::from),
            containers: 0,
        }
    }

    fn container(name: &str, nets: &[(&str, &str)]) -> Container {
        Container {
            id: format!("cid-{name}"),
            name: name.into(),
            labels: Default::default(),
            networks: nets
                .iter()
                .map(|(n, a)| (n.to_string(), NetAddrs { ipv4: Some(a.parse().unwrap()), ipv6: None }))
                .collect(),
            ports: vec![],
            active: true,
            pid: 0,
        }
    }

    #[test]
    fn missing_network_is_created_then_the_container_connected() {
        let lb = container("lb", &[("bridge", "172.17.0.2")]);
        let (a, p) = plan(&cfg(), ME, &[net("bridge", "172.17.0.0/16", None)], &[&lb]);
        assert_eq!(
            a,
            vec![NetAction::Create {
                owner: ME.into(),
                name: "backend".into(),
                subnet: "198.18.104.0/24".parse().unwrap(),
                gateway: None,
                ipv6_subnet: None
            }]
        );
        assert!(p.is_empty());
        let (a, _) = plan(&cfg(), ME, &[net("backend", "198.18.104.0/24", Some(ME))], &[&lb]);
        assert_eq!(
            a,
            vec![NetAction::Connect {
                network: "backend".into(),
                network_id: "id-backend".into(),
                container: "lb".into(),
                container_id: "cid-lb".into(),
                ip: "198.18.104.2".parse().unwrap(),
            }]
        );
        let connected = container("lb", &[("backend", "198.18.104.2")]);
        assert_eq!(
            plan(&cfg(), ME, &[net("backend", "198.18.104.0/24", Some(ME))], &[&connected]),
            (vec![], vec![])
        );
    }

    #[test]
    fn foreign_networks_and_other_instances_networks_are_never_changed_or_deleted() {
        let (a, p) = plan(&cfg(), ME, &[net("backend", "198.18.200.0/24", None)], &[]);
        assert!(a.is_empty());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("198.18.200.0/24") && p[0].contains("198.18.104.0/24"), "{p:?}");
        let empty = DockerConfig::default();
        let nets = [
            net("old", "198.18.9.0/24", Some(ME)),
            net("other-netmgrd", "198.18.8.0/24", Some("/srv/other/config.yaml")),
            net("theirs", "198.18.7.0/24", None),
        ];
        let (a, _) = plan(&empty, ME, &nets, &[]);
        assert_eq!(a, vec![NetAction::Delete { id: "id-old".into(), name: "old".into() }]);
        // Connected with another address: reported, not changed.
        let lb = container("lb", &[("backend", "198.18.104.9")]);
        let (a, p) = plan(&cfg(), ME, &[net("backend", "198.18.104.0/24", Some(ME))], &[&lb]);
        assert!(a.is_empty() && p[0].contains("198.18.104.9"), "{p:?}");
    }
}
