//! `nat.forward`: accept/drop rules in the forward chain between zones, interfaces, CIDRs,
//! managed sets and docker sets. Rules can only use sets of their own table, so managed sets
//! are copied into the owned table (`copy_<name>`) and kept in step by the plan.

use super::{owned_set, proto_ports, Entry, OwnedError, Sections};
use crate::config::{Config, ForwardRule, Verdict};
use crate::elements::{SetId, SetKind};
use crate::inet::IpFamily;
use crate::managed::{admin_sets, OwnedFill, Owner};
use crate::prefix::IpPrefix;
use crate::ruleset::{RuleSpec, Stmt};

/// Which side of a forward rule an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    From,
    To,
}

/// Alternatives for one side of a forward rule: matches, and the family they imply.
type Alternatives = Vec<(Vec<Stmt>, Option<IpFamily>)>;

pub(super) fn add(config: &Config, rules: &[ForwardRule], s: &mut Sections) -> Result<(), OwnedError> {
    for (index, r) in rules.iter().enumerate() {
        let entry = Entry { config, section: "nat.forward", index, line: r.line };
        let any = vec![(Vec::new(), None)];
        let froms = match &r.from {
            Some(t) => endpoint(config, t, Side::From, s).map_err(|m| entry.error(m))?,
            None => any.clone(),
        };
        let tos = match &r.to {
            Some(t) => endpoint(config, t, Side::To, s).map_err(|m| entry.error(m))?,
            None => any,
        };
        let verdict = match r.action {
            Verdict::Accept => Stmt::Accept,
            Verdict::Drop => Stmt::Drop,
        };
        let comment = entry.comment(&r.comment);
        let before = s.forward.len();
        for (from_matches, from_family) in &froms {
            for (to_matches, to_family) in &tos {
                let family = match (from_family, to_family) {
                    (Some(a), Some(b)) if a != b => continue,
                    (Some(a), _) | (_, Some(a)) => Some(*a),
                    _ => None,
                };
                for pp in proto_ports(r.proto, r.port.as_ref()) {
                    let mut stmts: Vec<Stmt> = family.map(Stmt::NfProto).into_iter().collect();
                    stmts.extend(from_matches.iter().cloned());
                    stmts.extend(to_matches.iter().cloned());
                    stmts.extend(pp);
                    stmts.push(verdict.clone());
                    s.forward.push(RuleSpec { stmts, comment: comment.clone() });
                }
            }
        }
        if s.forward.len() == before {
            return Err(entry.error("`from` and `to` are of different address families"));
        }
    }
    Ok(())
}

/// One side of a forward rule, as alternatives (each a list of matches and its family).
fn endpoint(config: &Config, text: &str, side: Side, s: &mut Sections) -> Result<Alternatives, String> {
    if let Ok(p) = text.parse::<IpPrefix>() {
        let p = IpPrefix { addr: p.network(), len: p.len };
        let m = match side {
            Side::From => Stmt::Saddr(p),
            Side::To => Stmt::Daddr(p),
        };
        return Ok(vec![(vec![m], Some(IpFamily::of(&p.addr)))]);
    }
    let iface = |n: &str| match side {
        Side::From => Stmt::IifName(n.to_string()),
        Side::To => Stmt::OifName(n.to_string()),
    };
    if config.zone_names().iter().any(|z| z == text) {
        return Ok(config.zone_interfaces(text).into_iter().map(|i| (vec![iface(i)], None)).collect());
    }
    let managed = admin_sets(config);
    let copies: Vec<SetId> = match text.strip_prefix("container:") {
        // A docker set entry is named by either of its sets; take both families.
        Some(name) => {
            let entry = managed.iter().find_map(|(o, set)| match o {
                Owner::Docker(i) if set.name == name => Some(*i),
                _ => None,
            });
            let Some(entry) = entry else {
                return Err(format!("`{text}`: no docker set named `{name}`"));
            };
            managed.iter().filter(|(o, _)| *o == Owner::Docker(entry)).map(|(_, set)| set.clone()).collect()
        }
        None => managed.iter().filter(|(_, set)| set.name == text).map(|(_, set)| set.clone()).collect(),
    };
    if !copies.is_empty() {
        let mut out = Vec::new();
        for src in copies {
            let kind = match src.kind {
                SetKind::Ipv4Net | SetKind::Ipv6Net | SetKind::Ipv4Addr | SetKind::Ipv6Addr => src.kind,
                _ => continue,
            };
            let copy = owned_set(config, format!("copy_{}", src.name), kind);
            s.add_set(copy.clone(), Owner::Owned(OwnedFill::CopyOf(src.clone())));
            let family = if kind.is_ipv4() { IpFamily::V4 } else { IpFamily::V6 };
            let m = match side {
                Side::From => Stmt::SaddrSet { set: copy.name.clone(), family },
                Side::To => Stmt::DaddrSet { set: copy.name.clone(), family },
            };
            out.push((vec![m], Some(family)));
        }
        return Ok(out);
    }
    if text.is_empty() || text.contains([' ', '/', '"']) || text.len() > 15 {
        return Err(format!("`{text}` is not a zone, interface, CIDR, managed set or container:<set>"));
    }
    Ok(vec![(vec![iface(text)], None)])
}
