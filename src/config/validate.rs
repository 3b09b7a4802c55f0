//! Checks that need more than one value: per section, each returning the position (found in
//! the text) and the message of the first problem.

use super::locate::locate;
use super::schema::{
    CgroupsConfig, DockerConfig, HooksConfig, InterfaceConfig, NatConfig, PolicyRoutingConfig, RawConfig,
    ZoneConfig,
};
use crate::elements::{check_nft_name, TableRef};
use std::collections::BTreeMap;

/// A located problem: ((line, column), message).
pub(super) type Problem = ((usize, usize), String);

/// rust-network-mgr's keys netmgrd accepts but does not use.
pub(super) fn legacy_warnings(raw: &RawConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if raw.nftables_rules_path.is_some() {
        warnings.push("`nftables_rules_path` (rust-network-mgr) is ignored".to_string());
    }
    if raw.http_bind_addr.is_some() {
        warnings.push("`http_bind_addr` (rust-network-mgr) is ignored: use the control socket".to_string());
    }
    warnings
}

/// Entries one list may hold: far beyond any router, small enough that every check stays fast.
pub(super) const MAX_ENTRIES: usize = 4096;

/// Every list of the config within `MAX_ENTRIES`.
pub(super) fn list_lengths(text: &str, config: &super::Config) -> Result<(), Problem> {
    let nat = config.nat.as_ref();
    let docker = config.docker.as_ref();
    let lists = [
        ("interfaces", config.interfaces.len()),
        ("zones", config.zones.len()),
        ("sets", docker.map_or(0, |d| d.sets.len())),
        ("dnat", nat.map_or(0, |n| n.dnat.len())),
        ("snat", nat.map_or(0, |n| n.snat.len())),
        ("masquerade", nat.map_or(0, |n| n.masquerade.len())),
        ("forward", nat.map_or(0, |n| n.forward.len())),
    ];
    for (key, len) in lists {
        if len > MAX_ENTRIES {
            return Err((
                locate(text, key, 0),
                format!("`{key}` has {len} entries; at most {MAX_ENTRIES} are accepted"),
            ));
        }
    }
    Ok(())
}

/// Interface names the kernel accepts, each listed once.
pub(super) fn interfaces(text: &str, interfaces: &[InterfaceConfig]) -> Result<(), Problem> {
    let mut seen = BTreeMap::new();
    for (i, iface) in interfaces.iter().enumerate() {
        if iface.name.is_empty() || iface.name.len() > 15 || iface.name.contains(['/', ' ']) {
            let pos =
                if iface.name.is_empty() { locate(text, "name", i) } else { locate(text, &iface.name, 0) };
            return Err((pos, format!("interfaces[{i}]: `{}` is not a valid interface name", iface.name)));
        }
        if seen.insert(iface.name.clone(), i).is_some() {
            return Err((
                locate(text, &iface.name, 1),
                format!("interface `{}` is listed twice", iface.name),
            ));
        }
    }
    Ok(())
}

/// Zone names become set names: they must be nft names.
pub(super) fn zones(text: &str, zones: &BTreeMap<String, ZoneConfig>) -> Result<(), Problem> {
    for zone in zones.keys() {
        if let Err(message) = check_nft_name(zone) {
            let pos = if zone.is_empty() { locate(text, "zones", 0) } else { locate(text, zone, 0) };
            return Err((pos, message));
        }
    }
    Ok(())
}

/// NAT entries: one in-side for DNAT, at most one out-side for SNAT/masquerade, known zones,
/// one family per SNAT, a protocol for every port.
pub(super) fn nat(nat: &NatConfig, zones: &[String]) -> Result<(), Problem> {
    let zone_ok = |z: &Option<String>| z.as_ref().is_none_or(|z| zones.contains(z));
    let fail = |line: usize, msg: String| Err(((line, 1), msg));
    for r in &nat.dnat {
        if r.in_container.is_some() {
            if r.in_interface.is_some() || r.in_zone.is_some() || r.hairpin {
                return fail(
                    r.line,
                    "nat.dnat: in_container goes without in_interface, in_zone and hairpin".into(),
                );
            }
            continue;
        }
        if r.in_interface.is_some() == r.in_zone.is_some() {
            return fail(r.line, "nat.dnat: give in_interface or in_zone (one of them)".into());
        }
        if !zone_ok(&r.in_zone) {
            return fail(r.line, format!("nat.dnat: unknown zone `{}`", r.in_zone.as_deref().unwrap_or("")));
        }
    }
    let outs = nat
        .snat
        .iter()
        .map(|r| (&r.out_interface, &r.out_zone, r.line, "snat"))
        .chain(nat.masquerade.iter().map(|r| (&r.out_interface, &r.out_zone, r.line, "masquerade")));
    for (out_i, out_z, line, what) in outs {
        if out_i.is_some() && out_z.is_some() {
            return fail(line, format!("nat.{what}: give out_interface or out_zone, not both"));
        }
        if !zone_ok(out_z) {
            return fail(line, format!("nat.{what}: unknown zone `{}`", out_z.as_deref().unwrap_or("")));
        }
    }
    for r in &nat.snat {
        if r.source.is_some_and(|src| src.addr.is_ipv4() != r.to.addr.is_ipv4()) {
            return fail(r.line, "nat.snat: source and to are of different families".into());
        }
    }
    for r in &nat.forward {
        if r.port.is_some() && r.proto.is_none() {
            return fail(r.line, "nat.forward: a port needs proto (tcp, udp or both)".into());
        }
    }
    Ok(())
}

/// Every docker set entry names at least one set.
pub(super) fn docker(text: &str, docker: &DockerConfig) -> Result<(), Problem> {
    for (i, set) in docker.sets.iter().enumerate() {
        if set.ipv4_set.is_none() && set.ipv6_set.is_none() {
            return Err((
                locate(text, "sets", 0),
                format!("docker.sets[{i}]: give ipv4_set, ipv6_set or both"),
            ));
        }
    }
    for (name, n) in &docker.networks {
        let fail = |m: String| Err((locate(text, name, 0), format!("docker.networks.{name}: {m}")));
        if n.subnet.addr.is_ipv6() {
            return fail(format!("subnet {} is IPv6; put it in ipv6_subnet", n.subnet));
        }
        if n.gateway.is_some_and(|g| !n.subnet.contains_addr(g)) {
            return fail(format!(
                "gateway {} is outside {}",
                n.gateway.map(|g| g.to_string()).unwrap_or_default(),
                n.subnet
            ));
        }
        if n.ipv6_subnet.is_some_and(|p| p.addr.is_ipv4()) {
            return fail("ipv6_subnet is not IPv6".into());
        }
        if let Some((other, _)) =
            docker.networks.iter().find(|(o, m)| *o != name && m.subnet.overlaps(&n.subnet))
        {
            return fail(format!("subnet {} overlaps docker.networks.{other}", n.subnet));
        }
    }
    for (cname, c) in &docker.containers {
        for r in &c.routes {
            if r.to.addr.is_ipv4() != r.via.is_ipv4() {
                return Err((
                    locate(text, &r.via.to_string(), 0),
                    format!("docker.containers.{cname}.routes: {} via {}: one family", r.to, r.via),
                ));
            }
        }
        for (net, ip) in &c.networks {
            let Some(n) = docker.networks.get(net) else {
                return Err((
                    locate(text, net, 1),
                    format!("docker.containers.{cname}: network `{net}` is not in docker.networks"),
                ));
            };
            let inside = n.subnet.contains_addr(*ip) || n.ipv6_subnet.is_some_and(|p| p.contains_addr(*ip));
            if !inside || n.gateway == Some(*ip) {
                return Err((
                    locate(text, &ip.to_string(), 0),
                    format!("docker.containers.{cname}: {ip} is not a free address of {net}"),
                ));
            }
            if let Some((other, _)) =
                docker.containers.iter().find(|(o, oc)| *o != cname && oc.networks.get(net) == Some(ip))
            {
                return Err((
                    locate(text, &ip.to_string(), 1),
                    format!("docker.containers.{cname}: {ip} on {net} is also given to {other}"),
                ));
            }
        }
    }
    Ok(())
}

/// Two owners must not write the same set: each would delete the other's elements.
pub(super) fn one_owner_per_set(text: &str, owners: &[(String, TableRef, String)]) -> Result<(), Problem> {
    let mut seen: BTreeMap<(&TableRef, &str), &str> = BTreeMap::new();
    for (owner, table, name) in owners {
        if let Some(other) = seen.insert((table, name), owner) {
            return Err((
                locate(text, name, 1),
                format!("set `{name}` in table `{table}` is used by both `{other}` and `{owner}`"),
            ));
        }
    }
    Ok(())
}

/// The owned table is replaced whole: it must not be a table that holds managed sets.
pub(super) fn owned_table(text: &str, config: &super::Config) -> Result<(), Problem> {
    let owned = &config.nftables.owned_table;
    let clash = config.set_owners().into_iter().find(|(_, table, _)| table == owned);
    if let Some((owner, _, set)) = clash {
        return Err((
            locate(text, "owned_table", 0),
            format!(
                "nftables.owned_table `{owned}` holds the managed set `{set}` ({owner}); netmgrd replaces \
                 its owned table whole, so it must be a table of its own (default `inet netmgrd`)"
            ),
        ));
    }
    Ok(())
}

/// Hooks need time to run and at least one slot.
pub(super) fn hooks(text: &str, hooks: &HooksConfig) -> Result<(), Problem> {
    if hooks.max_parallel == 0 || hooks.max_parallel > 64 {
        return Err((locate(text, "max_parallel", 0), "hooks.max_parallel must be 1 to 64".into()));
    }
    if hooks.timeout.0.is_zero() {
        return Err((locate(text, "timeout", 0), "hooks.timeout must be more than 0".into()));
    }
    if !hooks.dir.is_absolute() {
        return Err((locate(text, "dir", 0), "hooks.dir must be an absolute path".into()));
    }
    Ok(())
}

/// One entry per interface; tables that are not the kernel's own.
pub(super) fn policy_routing(text: &str, entries: &[PolicyRoutingConfig]) -> Result<(), Problem> {
    for (i, e) in entries.iter().enumerate() {
        if crate::elements::ifname(&e.interface).is_none() {
            return Err((
                locate(text, &e.interface, 0),
                format!("policy_routing[{i}]: `{}` is not an interface name", e.interface),
            ));
        }
        if entries[..i].iter().any(|o| o.interface == e.interface) {
            return Err((
                locate(text, &e.interface, 1),
                format!("policy_routing[{i}]: {} is listed twice", e.interface),
            ));
        }
        // 0 unspec, 253 default, 254 main, 255 local: the kernel's.
        if e.table.is_some_and(|t| t == 0 || (253..=255).contains(&t)) {
            return Err((
                locate(text, "table", i),
                format!("policy_routing[{i}]: table {} is one of the kernel's own", e.table.unwrap_or(0)),
            ));
        }
        if e.priority == 0 || e.priority >= 32766 {
            return Err((
                locate(text, "priority", i),
                format!("policy_routing[{i}]: priority must be 1 to 32765 (below the main table's rule)"),
            ));
        }
    }
    Ok(())
}

/// Every cgroup set says which cgroups it takes, at a depth a set can match.
pub(super) fn cgroups(text: &str, cgroups: &CgroupsConfig) -> Result<(), Problem> {
    for (i, c) in cgroups.sets.iter().enumerate() {
        if c.units.is_empty() && c.paths.is_empty() {
            return Err((locate(text, &c.set, 0), format!("cgroups.sets[{i}]: give units, paths or both")));
        }
        if c.level.is_some_and(|l| l == 0 || l > 255) {
            return Err((locate(text, "level", i), format!("cgroups.sets[{i}]: level must be 1 to 255")));
        }
    }
    if cgroups.sets.len() > MAX_ENTRIES {
        return Err((
            locate(text, "cgroups", 0),
            format!("`cgroups.sets` has more than {MAX_ENTRIES} entries"),
        ));
    }
    Ok(())
}
