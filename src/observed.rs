//! `Observed`: what netmgrd currently knows of the world, and how each event updates it.

use crate::event::{Address, Event, Link};
use crate::wire::docker::Container;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Links by ifindex.
    pub links: BTreeMap<u32, Link>,
    /// Addresses by ifindex, then by (address, prefix length): the kernel allows one IP with
    /// two prefix lengths (a DHCP netmask change adds the new one before deleting the old),
    /// and each is removed on its own. A re-announced address replaces its entry.
    pub addrs: BTreeMap<u32, BTreeMap<(IpAddr, u8), Address>>,
    /// False until the first complete rtnetlink dump: planning before that would empty sets.
    pub net_ready: bool,
    /// Running containers by id (paused and stopped ones are not here).
    pub containers: BTreeMap<String, Container>,
    /// False until the first full Docker sync: until then docker sets are left alone.
    pub docker_ready: bool,
    /// Cgroups by path relative to the cgroup root, with their ids (directory inodes).
    pub cgroups: BTreeMap<String, u64>,
    /// False until the first cgroup scan: until then cgroup sets are left alone.
    pub cgroups_ready: bool,
    /// The Engine's networks, once listed.
    pub networks: Option<Vec<crate::wire::docker::EngineNetwork>>,
}

impl Observed {
    /// Applies a network event. Returns true when the network picture changed.
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::NetSnapshot { links, addrs } => {
                let before = (self.links.clone(), self.addrs.clone(), self.net_ready);
                self.links = links.iter().map(|l| (l.index, l.clone())).collect();
                self.addrs.clear();
                for a in addrs {
                    self.insert_addr(a);
                }
                self.net_ready = true;
                before != (self.links.clone(), self.addrs.clone(), true)
            }
            Event::LinkChanged(link) => self.links.insert(link.index, link.clone()).as_ref() != Some(link),
            Event::LinkRemoved { index } => {
                let had_link = self.links.remove(index).is_some();
                // The kernel also reports each address gone; dropping them here keeps a
                // re-created link of the same name from inheriting stale entries.
                self.addrs.remove(index).is_some() || had_link
            }
            Event::AddrAdded(a) => self.insert_addr(a),
            Event::AddrRemoved(a) => {
                let Some(per_link) = self.addrs.get_mut(&a.index) else { return false };
                let removed = per_link.remove(&(a.prefix.addr, a.prefix.len)).is_some();
                if per_link.is_empty() {
                    self.addrs.remove(&a.index);
                }
                removed
            }
            Event::DockerSnapshot(list) => {
                let fresh: BTreeMap<String, Container> =
                    list.iter().filter(|c| c.active).map(|c| (c.id.clone(), c.clone())).collect();
                let changed = fresh != self.containers || !self.docker_ready;
                self.containers = fresh;
                self.docker_ready = true;
                changed
            }
            Event::ContainerUp(c) if c.active => {
                self.containers.insert(c.id.clone(), c.clone()).as_ref() != Some(c)
            }
            Event::ContainerUp(c) => self.containers.remove(&c.id).is_some(),
            Event::ContainerGone(id) => self.containers.remove(id).is_some(),
            Event::CgroupSnapshot(list) => {
                let fresh: BTreeMap<String, u64> = list.iter().cloned().collect();
                let changed = fresh != self.cgroups || !self.cgroups_ready;
                self.cgroups = fresh;
                self.cgroups_ready = true;
                changed
            }
            Event::CgroupAdded { path, id } => self.cgroups.insert(path.clone(), *id) != Some(*id),
            Event::CgroupRemoved { path } => {
                let below = format!("{path}/");
                let before = self.cgroups.len();
                self.cgroups.retain(|p, _| p != path && !p.starts_with(&below));
                self.cgroups.len() != before
            }
            Event::CgroupUnits { units, found } => {
                let before = self.cgroups.clone();
                self.cgroups.retain(|p, _| !p.split('/').any(|c| units.iter().any(|u| u == c)));
                self.cgroups.extend(found.iter().cloned());
                self.cgroups != before
            }
            Event::DockerNetworks(list) => {
                let changed = self.networks.as_ref() != Some(list);
                self.networks = Some(list.clone());
                changed
            }
            Event::NetResyncing
            | Event::DockerNetResult { .. }
            | Event::CgroupFollow(_)
            | Event::HookFinished { .. }
            | Event::Policy(_)
            | Event::LinkRoutes { .. }
            | Event::Engine(_)
            | Event::Control { .. }
            | Event::Signal(_)
            | Event::ChildExited { .. }
            | Event::NftCommit(_)
            | Event::NftLost(_) => false,
        }
    }

    fn insert_addr(&mut self, a: &Address) -> bool {
        let per_link = self.addrs.entry(a.index).or_default();
        per_link.insert((a.prefix.addr, a.prefix.len), a.clone()).as_ref() != Some(a)
    }

    /// Links currently carrying `name` (normally zero or one).
    pub fn links_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.values().filter(move |l| l.name == name)
    }

    pub fn addresses_of(&self, index: u32) -> impl Iterator<Item = &Address> {
        self.addrs.get(&index).into_iter().flat_map(|m| m.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str) -> Link {
        Link { index, name: name.into(), up: true, carrier: true }
    }

    fn addr(index: u32, text: &str) -> Address {
        Address { index, prefix: text.parse().unwrap(), scope: 0, flags: 0 }
    }

    #[test]
    fn events_update_state() {
        let mut o = Observed::default();
        assert!(o.apply(&Event::NetSnapshot {
            links: vec![link(2, "eth0")],
            addrs: vec![addr(2, "192.0.2.1/24")]
        }));
        assert!(o.net_ready);
        assert!(!o.apply(&Event::AddrAdded(addr(2, "192.0.2.1/24"))), "same address again is no change");
        assert!(o.apply(&Event::AddrAdded(addr(2, "2001:db8::1/64"))));
        assert_eq!(o.addresses_of(2).count(), 2);
        assert!(o.apply(&Event::AddrRemoved(addr(2, "192.0.2.1/24"))));
        assert!(!o.apply(&Event::AddrRemoved(addr(2, "192.0.2.1/24"))));
        assert!(o.apply(&Event::LinkChanged(Link {
            index: 2,
            name: "wan0".into(),
            up: false,
            carrier: false
        })));
        assert_eq!(o.links_named("wan0").count(), 1);
        assert!(o.apply(&Event::LinkRemoved { index: 2 }));
        assert_eq!(o.addresses_of(2).count(), 0);
        assert!(o.links.is_empty());
    }

    #[test]
    fn one_address_with_two_prefix_lengths_stays_until_both_are_gone() {
        let mut o = Observed::default();
        o.apply(&Event::NetSnapshot { links: vec![link(2, "eth0")], addrs: vec![] });
        assert!(o.apply(&Event::AddrAdded(addr(2, "203.0.113.50/24"))));
        assert!(o.apply(&Event::AddrAdded(addr(2, "203.0.113.50/25"))));
        assert!(o.apply(&Event::AddrRemoved(addr(2, "203.0.113.50/24"))));
        let left: Vec<String> = o.addresses_of(2).map(|a| a.prefix.to_string()).collect();
        assert_eq!(left, vec!["203.0.113.50/25"]);
        assert!(o.apply(&Event::AddrRemoved(addr(2, "203.0.113.50/25"))));
        assert_eq!(o.addresses_of(2).count(), 0);
    }

    #[test]
    fn snapshot_replaces_everything() {
        let mut o = Observed::default();
        o.apply(&Event::AddrAdded(addr(3, "198.51.100.1/24")));
        o.apply(&Event::NetSnapshot { links: vec![link(2, "eth0")], addrs: vec![] });
        assert_eq!(o.addresses_of(3).count(), 0);
        assert!(!o.apply(&Event::NetSnapshot { links: vec![link(2, "eth0")], addrs: vec![] }));
    }
}
