//! The owned table a config asks for, as data (`OwnedTable`) plus the owner of each of its
//! sets. Pure. Each section of the config is one file with one function that adds its sets
//! and rules: `publish` (docker.publish), `dnat`, `source_nat` (snat, masquerade) and
//! `forward`. Errors name the config entry (`nat.dnat[1] (file:line)`).

mod dnat;
mod forward;
mod publish;
mod source_nat;

pub use publish::publish_sets;

use crate::config::{Config, PortSpec, ProtoSel, Verdict};
use crate::elements::{Desired, SetId, SetKind};
use crate::managed::Owner;
use crate::ruleset::{ChainSpec, Hook, OwnedTable, RuleSpec, Stmt};
use std::fmt;
use std::path::PathBuf;

/// The owned table and the owner of each of its sets (`Owner::Publish` or `Owner::Owned`).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedPlan {
    pub table: OwnedTable,
    pub sets: Vec<(SetId, Owner)>,
}

/// A config entry the owned table cannot be built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedError {
    pub path: PathBuf,
    pub line: usize,
    /// `nat.dnat[1]`.
    pub entry: String,
    pub message: String,
}

impl fmt::Display for OwnedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:1: {}: {}", self.path.display(), self.line, self.entry, self.message)
    }
}

impl std::error::Error for OwnedError {}

/// Whether the config needs the owned table at all.
pub fn wanted(config: &Config) -> bool {
    config.docker.as_ref().is_some_and(|d| d.publish) || config.nat.is_some()
}

/// What the sections add to: the table's sets, rules per chain, and the static elements.
#[derive(Default)]
struct Sections {
    sets: Vec<(SetId, Owner)>,
    prerouting: Vec<RuleSpec>,
    output: Vec<RuleSpec>,
    postrouting: Vec<RuleSpec>,
    forward: Vec<RuleSpec>,
    /// Elements fixed by the config (single-port `nat.dnat` maps).
    statics: Desired,
}

impl Sections {
    fn add_set(&mut self, set: SetId, owner: Owner) {
        if !self.sets.iter().any(|(s, _)| *s == set) {
            self.sets.push((set, owner));
        }
    }
}

/// One config entry: where it is, for rule comments and errors.
struct Entry<'a> {
    config: &'a Config,
    section: &'static str,
    index: usize,
    line: usize,
}

impl Entry<'_> {
    fn error(&self, message: impl Into<String>) -> OwnedError {
        OwnedError {
            path: self.config.path.clone(),
            line: self.line,
            entry: format!("{}[{}]", self.section, self.index),
            message: message.into(),
        }
    }

    /// The rule comment: `nat.dnat[1] (file:line) admin's comment`.
    fn comment(&self, extra: &Option<String>) -> String {
        let mut s =
            format!("{}[{}] ({}:{})", self.section, self.index, self.config.path.display(), self.line);
        if let Some(c) = extra {
            s.push(' ');
            // nft cannot print a `"` inside a comment.
            s.push_str(&c.replace('"', "'"));
        }
        s
    }
}

fn owned_set(config: &Config, name: String, kind: SetKind) -> SetId {
    SetId { table: config.nftables.owned_table.clone(), name, kind }
}

/// Interfaces named by `interface` or by `zone`.
fn interfaces(config: &Config, interface: &Option<String>, zone: &Option<String>) -> Vec<String> {
    match (interface, zone) {
        (Some(i), _) => vec![i.clone()],
        (None, Some(z)) => config.zone_interfaces(z).into_iter().map(str::to_string).collect(),
        (None, None) => Vec::new(),
    }
}

/// Protocol and port matches: one alternative per protocol and port range (one empty
/// alternative when no protocol is given).
fn proto_ports(proto: Option<ProtoSel>, ports: Option<&PortSpec>) -> Vec<Vec<Stmt>> {
    let Some(proto) = proto else { return vec![Vec::new()] };
    let mut out = Vec::new();
    for &p in proto.protocols() {
        match ports {
            Some(ps) => out.extend(ps.0.iter().map(|(a, b)| vec![Stmt::L4Proto(p), Stmt::Dport(*a, *b)])),
            None => out.push(vec![Stmt::L4Proto(p)]),
        }
    }
    out
}

/// The owned table for a config (`None` when the config needs none).
pub fn plan(config: &Config) -> Result<Option<OwnedPlan>, OwnedError> {
    if !wanted(config) {
        return Ok(None);
    }
    let mut s = Sections::default();
    let publish = config.docker.as_ref().is_some_and(|d| d.publish);
    if publish {
        publish::add(config, &mut s);
    }
    let nat = config.nat.clone().unwrap_or_default();
    let policy_drop = nat.forward_policy == Verdict::Drop;
    if policy_drop {
        s.forward.push(RuleSpec {
            stmts: vec![Stmt::CtEstablished, Stmt::Accept],
            comment: "nat.forward_policy: replies".into(),
        });
    }
    dnat::add(config, &nat.dnat, &mut s)?;
    source_nat::add(config, &nat, &mut s);
    forward::add(config, &nat.forward, &mut s)?;
    // After the admin's own forward rules, so a `drop` there still wins.
    if publish || !nat.dnat.is_empty() {
        s.forward.push(RuleSpec {
            stmts: vec![Stmt::CtStatusDnat, Stmt::Accept],
            comment: "translated flows (docker.publish, nat.dnat)".into(),
        });
    }
    // `forward_policy: drop` is a last rule, not the chain policy: while a transaction that
    // replaces the table is prepared, the new chain is already hooked but has no rules yet,
    // and a drop policy there would drop packets the old rules still accept.
    if policy_drop {
        s.forward.push(RuleSpec { stmts: vec![Stmt::Drop], comment: "nat.forward_policy: drop".into() });
    }
    let chain =
        |name, hook, priority, nat, rules| ChainSpec { name, hook, priority, nat, policy_drop: false, rules };
    let table = OwnedTable {
        table: config.nftables.owned_table.clone(),
        elements: s.statics,
        sets: s.sets.iter().map(|(set, _)| set.clone()).collect(),
        chains: vec![
            chain("prerouting", Hook::Prerouting, -100, true, s.prerouting),
            chain("output", Hook::Output, -100, true, s.output),
            chain("postrouting", Hook::Postrouting, 100, true, s.postrouting),
            chain("forward", Hook::Forward, 0, false, s.forward),
        ],
    };
    Ok(Some(OwnedPlan { table, sets: s.sets }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan_of(text: &str) -> Result<Option<OwnedPlan>, OwnedError> {
        plan(&Config::parse(Path::new("/etc/netmgrd/config.yaml"), text).unwrap())
    }

    #[test]
    fn no_table_without_nat_or_publish() {
        assert_eq!(plan_of("interfaces: [{ name: eth0, zone: wan }]\n").unwrap(), None);
        assert!(plan_of("nat: {}\n").unwrap().is_some());
    }

    #[test]
    fn errors_name_the_entry() {
        let e = plan_of(
            "nat:\n  dnat:\n    - { in_interface: averyveryverylongname, port: 80, to: 192.0.2.1 }\n",
        )
        .unwrap_err();
        assert_eq!(e.entry, "nat.dnat[0]");
        assert_eq!(e.line, 3);
        assert!(
            e.to_string().starts_with("/etc/netmgrd/config.yaml:3:1: nat.dnat[0]: interface name"),
            "{e}"
        );
        let e = plan_of("nat:\n  dnat:\n    - { in_interface: eth0, port: 80, to: 192.0.2.1 }\n    - { in_interface: eth0, proto: tcp, port: 80, to: 192.0.2.2 }\n")
            .unwrap_err();
        assert_eq!((e.entry.as_str(), e.line), ("nat.dnat[1]", 4));
        assert!(e.message.contains("eth0 tcp/80 is forwarded twice"), "{e}");
        let e = plan_of("nat:\n  forward:\n    - { from: container:nope, action: accept }\n").unwrap_err();
        assert_eq!(e.entry, "nat.forward[0]");
        assert!(e.message.contains("no docker set named `nope`"), "{e}");
        let e = plan_of(
            "nat:\n  forward:\n    - { from: 192.0.2.0/24, to: \"2001:db8::/64\", action: accept }\n",
        )
        .unwrap_err();
        assert!(e.message.contains("different address families"), "{e}");
    }

    #[test]
    fn owners_of_owned_sets() {
        let p = plan_of("interfaces: [{ name: eth0, zone: wan }]\ndocker: { publish: true }\nnat:\n  dnat:\n    - { in_zone: wan, proto: tcp, port: 80, to: 192.0.2.1, hairpin: true }\n  forward:\n    - { from: wan_ips, action: drop }\n")
            .unwrap()
            .unwrap();
        let owner = |name: &str| p.sets.iter().find(|(s, _)| s.name == name).map(|(_, o)| o.clone());
        assert_eq!(owner("publish4"), Some(Owner::Publish));
        assert_eq!(owner("dnat4"), Some(Owner::Owned(crate::managed::OwnedFill::Static)));
        assert!(matches!(
            owner("addr_wan_4"),
            Some(Owner::Owned(crate::managed::OwnedFill::Addresses { .. }))
        ));
        assert!(matches!(owner("copy_wan_ips"), Some(Owner::Owned(crate::managed::OwnedFill::CopyOf(_)))));
    }
}
