//! Which sets a config manages, and who owns each: the one answer the plan, the daemon, the
//! owned table and `status` all read. Owners are typed, so a zone may be called `docker` or
//! `publish` without being mistaken for anything else.

use crate::config::Config;
use crate::elements::{SetId, SetKind};
use std::collections::BTreeMap;

/// Who fills a managed set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// The addresses (or networks) of a zone's interfaces.
    Zone(String),
    /// Container addresses for `docker.sets[i]`.
    Docker(usize),
    /// Cgroup ids for `cgroups.sets[i]`.
    Cgroup(usize),
    /// The owned table's publish maps and hairpin sets (`docker.publish`).
    Publish,
    /// Another set of the owned table; `OwnedFill` says where its elements come from.
    Owned(OwnedFill),
}

/// Where the elements of an owned set (other than the publish maps) come from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OwnedFill {
    /// The addresses of these interfaces (hairpin: "our public address").
    Addresses { interfaces: Vec<String> },
    /// A copy of a managed set of the admin's table (rules can only use sets of their own table).
    CopyOf(SetId),
    /// Fixed by the config (single-port `nat.dnat` entries).
    Static,
    /// `nat.dnat` entries whose target is a container: its current IPv4 address.
    Containers(Vec<ContainerForward>),
}

/// One single-port `nat.dnat` entry to `container:NAME[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerForward {
    pub iface: crate::elements::IfName,
    pub proto: crate::inet::L4Proto,
    pub port: u16,
    pub container: String,
    pub to_port: u16,
}

impl Owner {
    /// Filled from containers: left alone until the first full Docker sync.
    pub fn from_containers(&self) -> bool {
        matches!(self, Owner::Docker(_) | Owner::Publish | Owner::Owned(OwnedFill::Containers(_)))
    }

    /// How `status` and `sets` name the owner.
    pub fn label(&self) -> String {
        match self {
            Owner::Zone(z) => format!("zone {z}"),
            Owner::Docker(i) => format!("docker.sets[{i}]"),
            Owner::Cgroup(i) => format!("cgroups.sets[{i}]"),
            Owner::Publish => "docker.publish".to_string(),
            Owner::Owned(_) => "owned table".to_string(),
        }
    }
}

/// Every managed set of one config with its owner, in a stable order: zones, docker sets,
/// then the owned table's sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Managed {
    sets: Vec<(Owner, SetId)>,
    owner_of: BTreeMap<SetId, usize>,
}

impl Managed {
    /// The admin-table sets of `config` plus the owned table's sets (`owned`, as the owned
    /// table plan lists them).
    pub fn new(config: &Config, owned: &[(SetId, Owner)]) -> Managed {
        let mut sets = admin_sets(config);
        sets.extend(owned.iter().map(|(s, o)| (o.clone(), s.clone())));
        let owner_of = sets.iter().enumerate().map(|(i, (_, s))| (s.clone(), i)).collect();
        Managed { sets, owner_of }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Owner, SetId)> {
        self.sets.iter()
    }

    pub fn sets(&self) -> impl Iterator<Item = &SetId> {
        self.sets.iter().map(|(_, s)| s)
    }

    pub fn owner(&self, set: &SetId) -> Option<&Owner> {
        self.owner_of.get(set).map(|&i| &self.sets[i].0)
    }

    pub fn contains(&self, set: &SetId) -> bool {
        self.owner_of.contains_key(set)
    }

    /// True for sets filled from containers (left alone until the first Docker sync).
    pub fn from_containers(&self, set: &SetId) -> bool {
        self.owner(set).is_some_and(Owner::from_containers)
    }

    /// The sets of one zone.
    pub fn of_zone<'a>(&'a self, zone: &'a str) -> impl Iterator<Item = &'a SetId> + 'a {
        self.sets.iter().filter(move |(o, _)| matches!(o, Owner::Zone(z) if z == zone)).map(|(_, s)| s)
    }
}

/// The managed sets in the admin's tables: every zone's sets, every docker set, every cgroup set.
pub fn admin_sets(config: &Config) -> Vec<(Owner, SetId)> {
    let mut out = Vec::new();
    for zone in config.zone_names() {
        let z = config.zone_sets(&zone);
        let names = [
            (Some(&z.ipv4_set), SetKind::Ipv4Addr),
            (Some(&z.ipv6_set), SetKind::Ipv6Addr),
            (z.networks4_set.as_ref(), SetKind::Ipv4Net),
            (z.networks6_set.as_ref(), SetKind::Ipv6Net),
        ];
        for (name, kind) in names {
            if let Some(name) = name {
                let set = SetId { table: z.table.clone(), name: name.clone(), kind };
                out.push((Owner::Zone(zone.clone()), set));
            }
        }
    }
    for (i, d) in config.docker.iter().flat_map(|d| d.sets.iter()).enumerate() {
        let table = d.table.clone().unwrap_or_else(|| config.nftables.table.clone());
        for (name, kind) in [(&d.ipv4_set, SetKind::Ipv4Addr), (&d.ipv6_set, SetKind::Ipv6Addr)] {
            if let Some(name) = name {
                out.push((Owner::Docker(i), SetId { table: table.clone(), name: name.clone(), kind }));
            }
        }
    }
    for (i, c) in config.cgroups.iter().flat_map(|c| c.sets.iter()).enumerate() {
        let table = c.table.clone().unwrap_or_else(|| config.nftables.table.clone());
        out.push((Owner::Cgroup(i), SetId { table, name: c.set.clone(), kind: SetKind::Cgroup }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn zones_named_like_other_owners_stay_zones() {
        let text = "interfaces:\n  - { name: eth0, zone: docker }\n  - { name: eth1, zone: publish }\ndocker:\n  sets: [{ ipv4_set: web4 }]\n";
        let config = Config::parse(Path::new("t.yaml"), text).unwrap();
        let m = Managed::new(&config, &[]);
        let docker_zone: Vec<_> = m.of_zone("docker").map(|s| s.name.as_str()).collect();
        assert_eq!(docker_zone, vec!["docker_ips", "docker_ipv6"]);
        assert_eq!(m.of_zone("publish").count(), 2);
        let web4 = m.sets().find(|s| s.name == "web4").unwrap();
        assert_eq!(m.owner(web4), Some(&Owner::Docker(0)));
        let docker_ips = m.sets().find(|s| s.name == "docker_ips").unwrap();
        assert!(!m.from_containers(docker_ips), "a zone's set is not a container set");
        assert!(m.from_containers(web4));
    }
}
