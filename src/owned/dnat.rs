//! `nat.dnat`: single ports go into one `iifname . proto . port` map per family (one lookup
//! per packet, one element per entry); port ranges stay rules. Hairpin entries match on a set
//! of the in-interfaces' addresses that netmgrd keeps current, so a DHCP change needs no rule
//! change.

use super::{interfaces, owned_set, proto_ports, Entry, Sections};
use crate::config::{Config, DnatRule, DnatTarget, NatTarget};
use crate::elements::{ifname, Elem, SetKind};
use crate::inet::IpFamily;
use crate::managed::{ContainerForward, OwnedFill, Owner};
use crate::ruleset::{RuleSpec, Stmt};

pub(super) fn add(config: &Config, rules: &[DnatRule], s: &mut Sections) -> Result<(), super::OwnedError> {
    // (interface, protocol, port) already forwarded: a set, so 65,535 ports stay linear.
    let mut taken = std::collections::BTreeSet::new();
    let mut to_containers = Vec::new();
    // `in_container` entries live in the containers' namespaces (`container_ns`), not here.
    for (index, r) in rules.iter().enumerate().filter(|(_, r)| r.in_container.is_none()) {
        let entry = Entry { config, section: "nat.dnat", index, line: r.line };
        let comment = entry.comment(&r.comment);
        let ifaces = interfaces(config, &r.in_interface, &r.in_zone);
        let to = match &r.to {
            DnatTarget::Addr(t) => t,
            DnatTarget::Container { name, port } => {
                if r.hairpin || r.port.0.iter().any(|(a, b)| a != b) {
                    return Err(entry.error(format!(
                        "to container:{name}: single ports only, without hairpin (the address follows the container)"
                    )));
                }
                for iface in &ifaces {
                    let iface_name = ifname(iface).ok_or_else(|| {
                        entry.error(format!("interface name `{iface}` is longer than 15 bytes"))
                    })?;
                    for &(p, _) in &r.port.0 {
                        for &proto in r.proto.protocols() {
                            if !taken.insert((SetKind::Forward4, iface_name, proto, p)) {
                                return Err(entry.error(format!("{iface} {proto}/{p} is forwarded twice")));
                            }
                            to_containers.push(ContainerForward {
                                iface: iface_name,
                                proto,
                                port: p,
                                container: name.clone(),
                                to_port: port.unwrap_or(p),
                            });
                        }
                    }
                }
                continue;
            }
        };
        let family = IpFamily::of(&to.addr);
        let map_kind = match family {
            IpFamily::V4 => SetKind::Forward4,
            IpFamily::V6 => SetKind::Forward6,
        };
        let map = owned_set(config, format!("dnat{}", family.digit()), map_kind);
        for iface in &ifaces {
            let name = ifname(iface)
                .ok_or_else(|| entry.error(format!("interface name `{iface}` is longer than 15 bytes")))?;
            for &(port, _) in r.port.0.iter().filter(|(a, b)| a == b) {
                for &proto in r.proto.protocols() {
                    if !taken.insert((map.kind, name, proto, port)) {
                        return Err(entry.error(format!("{iface} {proto}/{port} is forwarded twice")));
                    }
                    let to_port = to.port.unwrap_or(port);
                    s.statics.entry(map.clone()).or_default().insert(Elem::PortForward {
                        iface: name,
                        proto,
                        port,
                        to: to.addr,
                        to_port,
                    });
                }
            }
            let ranges = proto_ports(Some(r.proto), Some(&r.port));
            for pp in ranges.iter().filter(|pp| matches!(pp.get(1), Some(Stmt::Dport(a, b)) if a != b)) {
                let mut stmts = vec![Stmt::IifName(iface.clone()), Stmt::NfProto(family), Stmt::DaddrLocal];
                stmts.extend(pp.iter().cloned());
                stmts.push(Stmt::Dnat { to: to.addr, port: to.port });
                s.prerouting.push(RuleSpec { stmts, comment: comment.clone() });
            }
        }
        if r.hairpin {
            hairpin(config, r, to, &ifaces, family, &comment, s);
        }
    }
    if rules.iter().any(|r| r.hairpin && r.in_container.is_none()) {
        s.postrouting.push(RuleSpec {
            stmts: vec![Stmt::HasHairpinMark, Stmt::Masquerade],
            comment: "nat.dnat hairpin".into(),
        });
    }
    // The map rules come after the range rules of every entry, as before.
    let maps: Vec<_> = s.statics.keys().cloned().collect();
    for map in maps {
        let family = if map.kind == SetKind::Forward4 { IpFamily::V4 } else { IpFamily::V6 };
        s.add_set(map.clone(), Owner::Owned(OwnedFill::Static));
        s.prerouting.push(RuleSpec {
            stmts: vec![Stmt::DaddrLocal, Stmt::DnatIfMap { map: map.name.clone(), family }],
            comment: format!("nat.dnat single ports (map {})", map.name),
        });
    }
    if !to_containers.is_empty() {
        let map = owned_set(config, "dnat4_containers".into(), SetKind::Forward4);
        s.add_set(map.clone(), Owner::Owned(OwnedFill::Containers(to_containers)));
        s.prerouting.push(RuleSpec {
            stmts: vec![Stmt::DaddrLocal, Stmt::DnatIfMap { map: map.name.clone(), family: IpFamily::V4 }],
            comment: "nat.dnat to containers (map dnat4_containers)".into(),
        });
    }
    Ok(())
}

/// Clients elsewhere reach the forward through the in-interface's own address: mark and
/// DNAT them, and let postrouting masquerade them so replies come back through the router.
fn hairpin(
    config: &Config,
    r: &DnatRule,
    to: &NatTarget,
    ifaces: &[String],
    family: IpFamily,
    comment: &str,
    s: &mut Sections,
) {
    let owner = match (&r.in_zone, &r.in_interface) {
        (Some(z), _) => z.clone(),
        (None, Some(i)) => format!("if_{}", i.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
        _ => return,
    };
    let kind = match family {
        IpFamily::V4 => SetKind::Ipv4Addr,
        IpFamily::V6 => SetKind::Ipv6Addr,
    };
    let set = owned_set(config, format!("addr_{owner}_{}", family.digit()), kind);
    s.add_set(set.clone(), Owner::Owned(OwnedFill::Addresses { interfaces: ifaces.to_vec() }));
    for pp in proto_ports(Some(r.proto), Some(&r.port)) {
        let mut stmts: Vec<Stmt> = ifaces.iter().map(|i| Stmt::IifNameNot(i.clone())).collect();
        stmts.push(Stmt::NfProto(family));
        stmts.push(Stmt::DaddrSet { set: set.name.clone(), family });
        stmts.extend(pp);
        stmts.push(Stmt::SetHairpinMark);
        stmts.push(Stmt::Dnat { to: to.addr, port: to.port });
        s.prerouting.push(RuleSpec { stmts: stmts.clone(), comment: format!("{comment} hairpin") });
        // The router itself reaching its public address (output hook).
        stmts.retain(|st| !matches!(st, Stmt::IifNameNot(_)));
        s.output.push(RuleSpec { stmts, comment: format!("{comment} hairpin") });
    }
}
