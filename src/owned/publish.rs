//! `docker.publish`: DNAT maps keyed by protocol and port (and host address for ports bound to
//! one address), filled per container, and hairpin masquerade for a container reaching itself.

use super::Sections;
use crate::config::Config;
use crate::elements::{SetId, SetKind, TableRef};
use crate::inet::IpFamily;
use crate::managed::Owner;
use crate::ruleset::{PublishKey, RuleSpec, Stmt};

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

pub(super) fn add(config: &Config, s: &mut Sections) {
    for set in publish_sets(&config.nftables.owned_table) {
        s.add_set(set, Owner::Publish);
    }
    // Bound maps first: a port bound to one address wins over the wildcard map.
    for (map, family, key) in [
        ("publish4_bound", IpFamily::V4, PublishKey::HostProtoPort),
        ("publish6_bound", IpFamily::V6, PublishKey::HostProtoPort),
        ("publish4", IpFamily::V4, PublishKey::ProtoPort),
        ("publish6", IpFamily::V6, PublishKey::ProtoPort),
    ] {
        let mut stmts = match key {
            PublishKey::HostProtoPort => vec![Stmt::NfProto(family)],
            PublishKey::ProtoPort => vec![Stmt::DaddrLocal],
        };
        stmts.push(Stmt::DnatMap { map: map.into(), family, key });
        let rule = RuleSpec { stmts, comment: format!("docker.publish: {map}") };
        s.prerouting.push(rule.clone());
        s.output.push(rule);
    }
    for (set, family) in [("hairpin4", IpFamily::V4), ("hairpin6", IpFamily::V6)] {
        s.postrouting.push(RuleSpec {
            stmts: vec![
                Stmt::CtStatusDnat,
                Stmt::NfProto(family),
                Stmt::PairSet { set: set.into(), family },
                Stmt::Masquerade,
            ],
            comment: "docker.publish: hairpin".into(),
        });
    }
}
