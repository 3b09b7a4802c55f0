//! `nat.snat` and `nat.masquerade`: postrouting rules, one per output interface.

use super::{interfaces, Entry, Sections};
use crate::config::{Config, NatConfig};
use crate::inet::IpFamily;
use crate::prefix::IpPrefix;
use crate::ruleset::{RuleSpec, Stmt};

pub(super) fn add(config: &Config, nat: &NatConfig, s: &mut Sections) {
    for (index, r) in nat.snat.iter().enumerate() {
        let entry = Entry { config, section: "nat.snat", index, line: r.line };
        let ifaces = interfaces(config, &r.out_interface, &r.out_zone);
        let family = Some(IpFamily::of(&r.to.addr));
        let rules = rules(ifaces, family, r.source, Stmt::Snat { to: r.to.addr }, &entry.comment(&r.comment));
        s.postrouting.extend(rules);
    }
    for (index, r) in nat.masquerade.iter().enumerate() {
        let entry = Entry { config, section: "nat.masquerade", index, line: r.line };
        let ifaces = interfaces(config, &r.out_interface, &r.out_zone);
        let family = r.source.map(|src| IpFamily::of(&src.addr));
        let rules = rules(ifaces, family, r.source, Stmt::Masquerade, &entry.comment(&r.comment));
        s.postrouting.extend(rules);
    }
}

/// One rule per output interface (or one for any interface).
fn rules(
    ifaces: Vec<String>,
    family: Option<IpFamily>,
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
            stmts.extend(family.map(Stmt::NfProto));
            stmts.extend(source.map(|src| Stmt::Saddr(IpPrefix { addr: src.network(), len: src.len })));
            stmts.push(action.clone());
            RuleSpec { stmts, comment: comment.to_string() }
        })
        .collect()
}
