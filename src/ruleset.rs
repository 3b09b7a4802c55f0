//! The owned table as data: chains, rules and the sets they use. Pure: `plan` builds it from
//! the config, `render` prints it as nft text (`check --print`, the `ruleset` command) and
//! `nft::table` turns the same value into one atomic batch, so what is printed is what is sent.

use crate::elements::{Desired, SetId, TableRef};
use crate::inet::{IpFamily, L4Proto};
use crate::prefix::IpPrefix;
use std::fmt::Write;
use std::net::IpAddr;

/// Packet mark bit set on hairpinned port-forward connections in prerouting, so postrouting
/// can masquerade them (the input interface is unknown there).
pub const HAIRPIN_MARK: u32 = 0x4000_0000;

/// The comment that marks the owned table as netmgrd's (its table userdata): netmgrd never
/// replaces or deletes a table without it.
pub const OWNED_TABLE_COMMENT: &str = "netmgrd owned table";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Output,
    Postrouting,
    Forward,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    pub name: &'static str,
    pub hook: Hook,
    pub priority: i32,
    /// NAT chain (else filter).
    pub nat: bool,
    pub policy_drop: bool,
    pub rules: Vec<RuleSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub stmts: Vec<Stmt>,
    /// Names the config entry the rule came from.
    pub comment: String,
}

/// How a publish map is keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishKey {
    /// `meta l4proto . th dport`: every local address.
    ProtoPort,
    /// `ip daddr . meta l4proto . th dport`: ports bound to one host address.
    HostProtoPort,
}

/// One match or action; `family` picks the address family where it matters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    NfProto(IpFamily),
    IifName(String),
    IifNameNot(String),
    OifName(String),
    L4Proto(L4Proto),
    /// Destination port range, inclusive.
    Dport(u16, u16),
    Saddr(IpPrefix),
    Daddr(IpPrefix),
    SaddrSet {
        set: String,
        family: IpFamily,
    },
    DaddrSet {
        set: String,
        family: IpFamily,
    },
    /// `ip saddr . ip daddr @set`
    PairSet {
        set: String,
        family: IpFamily,
    },
    /// `fib daddr type local`
    DaddrLocal,
    /// `ct status dnat`
    CtStatusDnat,
    /// `ct state established,related`
    CtEstablished,
    /// `meta mark set meta mark | HAIRPIN_MARK`
    SetHairpinMark,
    /// `meta mark & HAIRPIN_MARK != 0`
    HasHairpinMark,
    Dnat {
        to: IpAddr,
        port: Option<u16>,
    },
    /// `dnat ip to [ip daddr .] meta l4proto . th dport map @map`
    DnatMap {
        map: String,
        family: IpFamily,
        key: PublishKey,
    },
    /// `dnat ip to iifname . meta l4proto . th dport map @map`
    DnatIfMap {
        map: String,
        family: IpFamily,
    },
    Snat {
        to: IpAddr,
    },
    Masquerade,
    Accept,
    Drop,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedTable {
    pub table: TableRef,
    pub sets: Vec<SetId>,
    pub chains: Vec<ChainSpec>,
    /// Elements that come from the config itself (port-forward maps), printed with the table.
    pub elements: Desired,
}

impl Stmt {
    pub fn text(&self) -> String {
        match self {
            Stmt::NfProto(f) => format!("meta nfproto {}", f.nfproto_name()),
            Stmt::IifName(n) => format!("iifname {}", quote(n)),
            Stmt::IifNameNot(n) => format!("iifname != {}", quote(n)),
            Stmt::OifName(n) => format!("oifname {}", quote(n)),
            Stmt::L4Proto(p) => format!("meta l4proto {p}"),
            Stmt::Dport(a, b) if a == b => format!("th dport {a}"),
            Stmt::Dport(a, b) => format!("th dport {a}-{b}"),
            Stmt::Saddr(p) => format!("{} saddr {}", IpFamily::of(&p.addr).nft_keyword(), net(p)),
            Stmt::Daddr(p) => format!("{} daddr {}", IpFamily::of(&p.addr).nft_keyword(), net(p)),
            Stmt::SaddrSet { set, family } => format!("{} saddr @{set}", family.nft_keyword()),
            Stmt::DaddrSet { set, family } => format!("{} daddr @{set}", family.nft_keyword()),
            Stmt::PairSet { set, family } => {
                format!("{f} saddr . {f} daddr @{set}", f = family.nft_keyword())
            }
            Stmt::DaddrLocal => "fib daddr type local".into(),
            Stmt::CtStatusDnat => "ct status dnat".into(),
            Stmt::CtEstablished => "ct state established,related".into(),
            Stmt::SetHairpinMark => format!("meta mark set meta mark | 0x{HAIRPIN_MARK:08x}"),
            Stmt::HasHairpinMark => format!("meta mark & 0x{HAIRPIN_MARK:08x} == 0x{HAIRPIN_MARK:08x}"),
            Stmt::Dnat { to, port } => match (to, port) {
                (IpAddr::V4(a), Some(p)) => format!("dnat ip to {a}:{p}"),
                (IpAddr::V4(a), None) => format!("dnat ip to {a}"),
                (IpAddr::V6(a), Some(p)) => format!("dnat ip6 to [{a}]:{p}"),
                (IpAddr::V6(a), None) => format!("dnat ip6 to {a}"),
            },
            Stmt::DnatMap { map, family, key } => {
                let f = family.nft_keyword();
                let key = match key {
                    PublishKey::HostProtoPort => format!("{f} daddr . meta l4proto . th dport"),
                    PublishKey::ProtoPort => "meta l4proto . th dport".into(),
                };
                format!("dnat {f} to {key} map @{map}")
            }
            Stmt::DnatIfMap { map, family } => {
                format!("dnat {} to iifname . meta l4proto . th dport map @{map}", family.nft_keyword())
            }
            Stmt::Snat { to } => format!("snat {} to {to}", IpFamily::of(to).nft_keyword()),
            Stmt::Masquerade => "masquerade".into(),
            Stmt::Accept => "accept".into(),
            Stmt::Drop => "drop".into(),
        }
    }
}

fn net(p: &IpPrefix) -> String {
    let full = if p.addr.is_ipv4() { 32 } else { 128 };
    if p.len == full {
        p.addr.to_string()
    } else {
        format!("{}/{}", p.network(), p.len)
    }
}

/// nft strings have no escapes: a `"` inside cannot be written, so it becomes `'`.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "'"))
}

impl OwnedTable {
    /// nft text that `nft -f` accepts: the table is created, emptied and filled in one go, as
    /// netmgrd does it.
    pub fn render(&self) -> String {
        let t = &self.table;
        let mut out = String::new();
        let _ =
            writeln!(out, "table {t}\ndelete table {t}\ntable {t} {{\n\tcomment \"{OWNED_TABLE_COMMENT}\"");
        for s in &self.sets {
            let kind = if s.kind.data().is_some() { "map" } else { "set" };
            // The declaration carries `flags interval` for interval sets.
            let _ = writeln!(out, "\t{kind} {} {{ {}; }}", s.name, s.kind.declaration());
        }
        for c in &self.chains {
            let hook = match c.hook {
                Hook::Prerouting => "prerouting",
                Hook::Output => "output",
                Hook::Postrouting => "postrouting",
                Hook::Forward => "forward",
            };
            let ty = if c.nat { "nat" } else { "filter" };
            let policy = if c.policy_drop { "drop" } else { "accept" };
            let _ = writeln!(
                out,
                "\tchain {} {{\n\t\ttype {ty} hook {hook} priority {}; policy {policy};",
                c.name, c.priority
            );
            for r in &c.rules {
                let body: Vec<String> = r.stmts.iter().map(Stmt::text).collect();
                let _ = writeln!(out, "\t\t{} comment {}", body.join(" "), quote(&r.comment));
            }
            let _ = writeln!(out, "\t}}");
        }
        out.push_str("}\n");
        for (set, elems) in &self.elements {
            if !elems.is_empty() {
                let list: Vec<String> = elems.iter().map(|e| e.to_string()).collect();
                let _ = writeln!(out, "add element {} {} {{ {} }}", set.table, set.name, list.join(", "));
            }
        }
        out
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements::SetKind;

    #[test]
    fn renders_nft_text() {
        let t = OwnedTable {
            table: TableRef::parse("inet netmgrd").unwrap(),
            sets: vec![SetId {
                table: TableRef::parse("inet netmgrd").unwrap(),
                name: "publish4".into(),
                kind: SetKind::Publish4,
            }],
            chains: vec![ChainSpec {
                name: "prerouting",
                hook: Hook::Prerouting,
                priority: -100,
                nat: true,
                policy_drop: false,
                rules: vec![RuleSpec {
                    stmts: vec![
                        Stmt::IifName("eth0".into()),
                        Stmt::L4Proto(L4Proto::Tcp),
                        Stmt::Dport(8000, 8100),
                        Stmt::Dnat { to: "2001:db8::10".parse().unwrap(), port: Some(80) },
                    ],
                    comment: "nat.dnat[0] (config.yaml:8) \"web\"".into(),
                }],
            }],
            elements: Default::default(),
        };
        let text = t.render();
        assert!(
            text.starts_with("table inet netmgrd\ndelete table inet netmgrd\ntable inet netmgrd {\n\tcomment \"netmgrd owned table\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\tmap publish4 { type inet_proto . inet_service : ipv4_addr . inet_service; }\n"),
            "{text}"
        );
        assert!(text.contains("iifname \"eth0\" meta l4proto tcp th dport 8000-8100 dnat ip6 to [2001:db8::10]:80 comment \"nat.dnat[0] (config.yaml:8) 'web'\""), "{text}");
        assert_eq!(t.rule_count(), 1);
    }
}
