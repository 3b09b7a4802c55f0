//! What the owned table holds for a config: its sets and rules (`OwnedTable`) and the
//! elements of its sets. Pure. Docker publishing and the `nat:` section share the table.

use crate::config::{Config, ForwardRule, TableRef, Verdict};
use crate::elements::{Elem, SetId, SetKind};
use crate::plan::{admin_sets, Desired};
use crate::prefix::IpPrefix;
use crate::ruleset::{ChainSpec, Hook, OwnedTable, RuleSpec, Stmt};
use std::collections::BTreeSet;

/// The publish maps and hairpin sets of `docker.publish`.
pub fn publish_sets(owned: &TableRef) -> Vec<SetId> {
    [
        ("publish4", SetKind::Publish4),
        ("publish6", SetKind::Publish6),
        ("publish4_bound", SetKind::PublishBound4),
        ("publish6_bound", SetKind::PublishBound6),
        ("hairpin4", SetKind::Pair4),
        ("hairpin6", SetKind::Pair6),
    ]
    .into_iter()
    .map(|(name, kind)| SetId { table: owned.clone(), name: name.to_string(), kind })
    .collect()
}

/// Whether the config needs the owned table at all.
pub fn wanted(config: &Config) -> bool {
    config.docker.as_ref().is_some_and(|d| d.publish) || config.nat.is_some()
}

/// Alternatives for one side of a forward rule: matches, and the family they imply.
type Alternatives = Vec<(Vec<Stmt>, Option<bool>)>;

/// The owned table and where each of its sets gets its elements.
pub type OwnedPlan = (OwnedTable, Vec<(SetId, Source)>);

/// Where the elements of an owned set come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Filled from containers (`docker.publish`).
    Publish,
    /// The addresses of these interfaces (hairpin: "our public address").
    Addresses { interfaces: Vec<String> },
    /// A copy of a managed set of the admin's table (rules can only use sets of their own table).
    CopyOf(SetId),
    /// Fixed by the config (single-port `nat.dnat` entries).
    Static,
}

fn owned_set(config: &Config, name: String, kind: SetKind) -> SetId {
    SetId { table: config.nftables.owned_table.clone(), name, kind }
}

fn entry(what: &str, i: usize, line: usize, config: &Config, comment: &Option<String>) -> String {
    let mut s = format!("{what}[{i}] ({}:{line})", config.path.display());
    if let Some(c) = comment {
        s.push(' ');
        // nft cannot print a `"` inside a comment.
        s.push_str(&c.replace('"', "'"));
    }
    s
}

/// Interfaces named by `interface` or by `zone`.
fn interfaces(config: &Config, interface: &Option<String>, zone: &Option<String>) -> Vec<String> {
    match (interface, zone) {
        (Some(i), _) => vec![i.clone()],
        (None, Some(z)) => config.zone_interfaces(z).into_iter().map(str::to_string).collect(),
        (None, None) => Vec::new(),
    }
}

/// One side of a forward rule, as alternatives (each a list of matches and its family).
fn endpoint(
    config: &Config,
    text: &str,
    from: bool,
    sets: &mut Vec<(SetId, Source)>,
) -> Result<Alternatives, String> {
    if let Ok(p) = text.parse::<IpPrefix>() {
        let p = IpPrefix { addr: p.network(), len: p.len };
        return Ok(vec![(vec![if from { Stmt::Saddr(p) } else { Stmt::Daddr(p) }], Some(p.addr.is_ipv4()))]);
    }
    let iface = |n: &str| if from { Stmt::IifName(n.to_string()) } else { Stmt::OifName(n.to_string()) };
    if config.zone_names().iter().any(|z| z == text) {
        return Ok(config.zone_interfaces(text).into_iter().map(|i| (vec![iface(i)], None)).collect());
    }
    let managed = admin_sets(config);
    let copies: Vec<SetId> = match text.strip_prefix("container:") {
        Some(name) => {
            let found: Vec<SetId> = managed
                .iter()
                .filter(|(owner, s)| owner == crate::plan::DOCKER_OWNER && s.name == name)
                .map(|(_, s)| s.clone())
                .collect();
            // A docker set entry is named by either of its sets; take both families.
            let docker = config.docker.as_ref().map(|d| d.sets.as_slice()).unwrap_or_default();
            let entry = docker
                .iter()
                .find(|d| d.ipv4_set.as_deref() == Some(name) || d.ipv6_set.as_deref() == Some(name));
            let names: Vec<&String> =
                entry.into_iter().flat_map(|d| [&d.ipv4_set, &d.ipv6_set]).flatten().collect();
            let all: Vec<SetId> = managed
                .iter()
                .filter(|(owner, s)| owner == crate::plan::DOCKER_OWNER && names.contains(&&s.name))
                .map(|(_, s)| s.clone())
                .collect();
            if all.is_empty() && found.is_empty() {
                return Err(format!("`{text}`: no docker set named `{name}`"));
            }
            all
        }
        None => managed.iter().filter(|(_, s)| s.name == text).map(|(_, s)| s.clone()).collect(),
    };
    if !copies.is_empty() {
        let mut out = Vec::new();
        for src in copies {
            let kind = match src.kind {
                SetKind::Ipv4Net | SetKind::Ipv6Net | SetKind::Ipv4Addr | SetKind::Ipv6Addr => src.kind,
                _ => continue,
            };
            let copy = owned_set(config, format!("copy_{}", src.name), kind);
            if !sets.iter().any(|(s, _)| *s == copy) {
                sets.push((copy.clone(), Source::CopyOf(src.clone())));
            }
            let v4 = kind.is_ipv4();
            let m = if from {
                Stmt::SaddrSet { set: copy.name.clone(), v4 }
            } else {
                Stmt::DaddrSet { set: copy.name.clone(), v4 }
            };
            out.push((vec![m], Some(v4)));
        }
        return Ok(out);
    }
    if text.is_empty() || text.contains([' ', '/', '"']) || text.len() > 15 {
        return Err(format!("`{text}` is not a zone, interface, CIDR, managed set or container:<set>"));
    }
    Ok(vec![(vec![iface(text)], None)])
}

fn proto_ports(
    proto: Option<crate::config::ProtoSel>,
    ports: Option<&crate::config::PortSpec>,
) -> Vec<Vec<Stmt>> {
    let Some(proto) = proto else { return vec![Vec::new()] };
    let mut out = Vec::new();
    for p in proto.numbers() {
        match ports {
            Some(ps) => out.extend(ps.0.iter().map(|(a, b)| vec![Stmt::L4Proto(p), Stmt::Dport(*a, *b)])),
            None => out.push(vec![Stmt::L4Proto(p)]),
        }
    }
    out
}

fn forward_rules(
    config: &Config,
    i: usize,
    r: &ForwardRule,
    sets: &mut Vec<(SetId, Source)>,
) -> Result<Vec<RuleSpec>, String> {
    let at = |m: String| format!("{}:{}:1: nat.forward[{i}]: {m}", config.path.display(), r.line);
    let any = vec![(Vec::new(), None)];
    let froms = match &r.from {
        Some(t) => endpoint(config, t, true, sets).map_err(at)?,
        None => any.clone(),
    };
    let tos = match &r.to {
        Some(t) => endpoint(config, t, false, sets).map_err(at)?,
        None => any,
    };
    let verdict = match r.action {
        Verdict::Accept => Stmt::Accept,
        Verdict::Drop => Stmt::Drop,
    };
    let comment = entry("nat.forward", i, r.line, config, &r.comment);
    let mut rules = Vec::new();
    for (fm, ff) in &froms {
        for (tm, tf) in &tos {
            let family = match (ff, tf) {
                (Some(a), Some(b)) if a != b => continue,
                (Some(a), _) | (_, Some(a)) => Some(*a),
                _ => None,
            };
            for pp in proto_ports(r.proto, r.port.as_ref()) {
                let mut stmts: Vec<Stmt> = family.map(|v4| Stmt::NfProto { v4 }).into_iter().collect();
                stmts.extend(fm.iter().cloned());
                stmts.extend(tm.iter().cloned());
                stmts.extend(pp);
                stmts.push(verdict.clone());
                rules.push(RuleSpec { stmts, comment: comment.clone() });
            }
        }
    }
    if rules.is_empty() {
        return Err(at("`from` and `to` are of different address families".into()));
    }
    Ok(rules)
}

/// Postrouting rules for SNAT or masquerade: one per output interface (or one for any).
fn source_nat(
    ifaces: Vec<String>,
    family: Option<bool>,
    source: Option<IpPrefix>,
    action: Stmt,
    comment: &str,
) -> Vec<RuleSpec> {
    let ifaces: Vec<Option<String>> =
        if ifaces.is_empty() { vec![None] } else { ifaces.into_iter().map(Some).collect() };
    ifaces
        .into_iter()
        .map(|iface| {
            let mut stmts: Vec<Stmt> = iface.map(Stmt::OifName).into_iter().collect();
            stmts.extend(family.map(|v4| Stmt::NfProto { v4 }));
            stmts.extend(source.map(|src| Stmt::Saddr(IpPrefix { addr: src.network(), len: src.len })));
            stmts.push(action.clone());
            RuleSpec { stmts, comment: comment.to_string() }
        })
        .collect()
}

/// The owned table for a config, with where each of its sets gets its elements.
/// `Err` is `file:line: message` naming the config entry.
pub fn owned_table(config: &Config) -> Result<Option<OwnedPlan>, String> {
    if !wanted(config) {
        return Ok(None);
    }
    let table = config.nftables.owned_table.clone();
    let mut sets: Vec<(SetId, Source)> = Vec::new();
    let (mut pre, mut out, mut post, mut fwd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let publish = config.docker.as_ref().is_some_and(|d| d.publish);
    if publish {
        for s in publish_sets(&table) {
            sets.push((s, Source::Publish));
        }
        for (map, v4, bound) in [
            ("publish4_bound", true, true),
            ("publish6_bound", false, true),
            ("publish4", true, false),
            ("publish6", false, false),
        ] {
            let mut stmts = if bound { vec![Stmt::NfProto { v4 }] } else { vec![Stmt::DaddrLocal] };
            stmts.push(Stmt::DnatMap { map: map.into(), v4, bound });
            let rule = RuleSpec { stmts, comment: format!("docker.publish: {map}") };
            pre.push(rule.clone());
            out.push(rule);
        }
        for (set, v4) in [("hairpin4", true), ("hairpin6", false)] {
            post.push(RuleSpec {
                stmts: vec![
                    Stmt::CtStatusDnat,
                    Stmt::NfProto { v4 },
                    Stmt::PairSet { set: set.into(), v4 },
                    Stmt::Masquerade,
                ],
                comment: "docker.publish: hairpin".into(),
            });
        }
    }
    let nat = config.nat.clone().unwrap_or_default();
    let policy_drop = nat.forward_policy == Verdict::Drop;
    if policy_drop {
        fwd.push(RuleSpec {
            stmts: vec![Stmt::CtEstablished, Stmt::Accept],
            comment: "nat.forward_policy: replies".into(),
        });
    }
    // Single ports go into one map per family (one lookup per packet, one element per entry);
    // port ranges stay rules.
    let mut statics = std::collections::BTreeMap::new();
    for (i, r) in nat.dnat.iter().enumerate() {
        let comment = entry("nat.dnat", i, r.line, config, &r.comment);
        let ifaces = interfaces(config, &r.in_interface, &r.in_zone);
        let v4 = r.to.addr.is_ipv4();
        let pps = proto_ports(Some(r.proto), Some(&r.port));
        let map = owned_set(
            config,
            format!("dnat{}", if v4 { 4 } else { 6 }),
            if v4 { SetKind::Forward4 } else { SetKind::Forward6 },
        );
        for iface in &ifaces {
            let Some(name) = crate::elements::ifname(iface) else {
                return Err(format!(
                    "{}:{}:1: nat.dnat[{i}]: interface name `{iface}` is longer than 15 bytes",
                    config.path.display(),
                    r.line
                ));
            };
            for &(a, b) in r.port.0.iter().filter(|(a, b)| a == b) {
                for proto in r.proto.numbers() {
                    let elem = Elem::PortForward {
                        iface: name,
                        proto,
                        port: a,
                        to: r.to.addr,
                        to_port: r.to.port.unwrap_or(b),
                    };
                    let elems: &mut BTreeSet<Elem> = statics.entry(map.clone()).or_default();
                    if elems.iter().any(|e| matches!(e, Elem::PortForward { iface, proto: p, port, .. } if *iface == name && *p == proto && *port == a)) {
                        return Err(format!("{}:{}:1: nat.dnat[{i}]: {iface} {}/{a} is forwarded twice", config.path.display(), r.line, if proto == 6 { "tcp" } else { "udp" }));
                    }
                    elems.insert(elem);
                }
            }
            for pp in pps.iter().filter(|pp| matches!(pp.get(1), Some(Stmt::Dport(a, b)) if a != b)) {
                let mut stmts = vec![Stmt::IifName(iface.clone()), Stmt::NfProto { v4 }, Stmt::DaddrLocal];
                stmts.extend(pp.iter().cloned());
                stmts.push(Stmt::Dnat { to: r.to.addr, port: r.to.port });
                pre.push(RuleSpec { stmts, comment: comment.clone() });
            }
        }
        if r.hairpin {
            // Clients elsewhere use the in-interface's addresses: kept in a set of our own so
            // DHCP changes need no rule change.
            let owner = match (&r.in_zone, &r.in_interface) {
                (Some(z), _) => z.clone(),
                (None, Some(i)) => format!("if_{}", i.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
                _ => continue,
            };
            let set = owned_set(
                config,
                format!("addr_{owner}_{}", if v4 { 4 } else { 6 }),
                if v4 { SetKind::Ipv4Addr } else { SetKind::Ipv6Addr },
            );
            if !sets.iter().any(|(s, _)| *s == set) {
                sets.push((set.clone(), Source::Addresses { interfaces: ifaces.clone() }));
            }
            for pp in &pps {
                let mut stmts: Vec<Stmt> = ifaces.iter().map(|i| Stmt::IifNameNot(i.clone())).collect();
                stmts.push(Stmt::NfProto { v4 });
                stmts.push(Stmt::DaddrSet { set: set.name.clone(), v4 });
                stmts.extend(pp.iter().cloned());
                stmts.push(Stmt::SetHairpinMark);
                stmts.push(Stmt::Dnat { to: r.to.addr, port: r.to.port });
                pre.push(RuleSpec { stmts: stmts.clone(), comment: format!("{comment} hairpin") });
                // The router itself reaching its public address (output hook).
                stmts.retain(|s| !matches!(s, Stmt::IifNameNot(_)));
                out.push(RuleSpec { stmts, comment: format!("{comment} hairpin") });
            }
        }
    }
    if nat.dnat.iter().any(|r| r.hairpin) {
        post.push(RuleSpec {
            stmts: vec![Stmt::HasHairpinMark, Stmt::Masquerade],
            comment: "nat.dnat hairpin".into(),
        });
    }
    for map in statics.keys() {
        let v4 = map.kind == SetKind::Forward4;
        sets.push((map.clone(), Source::Static));
        pre.push(RuleSpec {
            stmts: vec![Stmt::DaddrLocal, Stmt::DnatIfMap { map: map.name.clone(), v4 }],
            comment: format!("nat.dnat single ports (map {})", map.name),
        });
    }
    for (i, r) in nat.snat.iter().enumerate() {
        let comment = entry("nat.snat", i, r.line, config, &r.comment);
        let ifaces = interfaces(config, &r.out_interface, &r.out_zone);
        post.extend(source_nat(
            ifaces,
            Some(r.to.addr.is_ipv4()),
            r.source,
            Stmt::Snat { to: r.to.addr },
            &comment,
        ));
    }
    for (i, r) in nat.masquerade.iter().enumerate() {
        let comment = entry("nat.masquerade", i, r.line, config, &r.comment);
        let ifaces = interfaces(config, &r.out_interface, &r.out_zone);
        let family = r.source.map(|s| s.addr.is_ipv4());
        post.extend(source_nat(ifaces, family, r.source, Stmt::Masquerade, &comment));
    }
    for (i, r) in nat.forward.iter().enumerate() {
        fwd.extend(forward_rules(config, i, r, &mut sets)?);
    }
    // After the admin's own forward rules, so a `drop` there still wins.
    if publish || !nat.dnat.is_empty() {
        fwd.push(RuleSpec {
            stmts: vec![Stmt::CtStatusDnat, Stmt::Accept],
            comment: "translated flows (docker.publish, nat.dnat)".into(),
        });
    }
    // `forward_policy: drop` is a last rule, not the chain policy: while a transaction that
    // replaces the table is prepared, the new chain is already hooked but has no rules yet,
    // and a drop policy there would drop packets the old rules still accept.
    if policy_drop {
        fwd.push(RuleSpec { stmts: vec![Stmt::Drop], comment: "nat.forward_policy: drop".into() });
    }
    let chain = |name, hook, priority, nat, policy_drop, rules| ChainSpec {
        name,
        hook,
        priority,
        nat,
        policy_drop,
        rules,
    };
    let table = OwnedTable {
        table,
        elements: statics,
        sets: sets.iter().map(|(s, _)| s.clone()).collect(),
        chains: vec![
            chain("prerouting", Hook::Prerouting, -100, true, false, pre),
            chain("output", Hook::Output, -100, true, false, out),
            chain("postrouting", Hook::Postrouting, 100, true, false, post),
            chain("forward", Hook::Forward, 0, false, false, fwd),
        ],
    };
    Ok(Some((table, sets)))
}

/// Elements of the owned sets that are not filled from containers.
pub fn copied_elements(
    table: &OwnedTable,
    sources: &[(SetId, Source)],
    desired: &Desired,
    addresses_of: impl Fn(&[String], bool) -> BTreeSet<Elem>,
) -> Desired {
    let mut out = Desired::new();
    for (set, src) in sources {
        let elems = match src {
            Source::Publish => continue,
            Source::Static => table.elements.get(set).cloned().unwrap_or_default(),
            Source::Addresses { interfaces } => addresses_of(interfaces, set.kind.is_ipv4()),
            Source::CopyOf(orig) => desired.get(orig).cloned().unwrap_or_default(),
        };
        out.insert(set.clone(), elems);
    }
    out
}
