//! The table netmgrd owns (`nftables.owned_table`): built in one transaction — add table,
//! delete it, add it again, then sets, chains and rules — so it is replaced atomically and a
//! crashed earlier instance leaves nothing stale. Its map elements are managed like any
//! other managed set afterwards.

use super::expr::{self, reg32, REG1, REG2};
use super::socket::{MsgInfo, Nft};
use super::{family_number, NftError};
use crate::config::{Family, TableRef};
use crate::elements::SetKind;
use crate::plan::{owned_sets, OwnedSet};
use nftnl::nftnl_sys as sys;
use nftnl::{Batch, Chain, ChainType, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table};
use std::ffi::{c_void, CString};
use std::os::raw::c_char;
use std::ptr::NonNull;

const NFT_MSG_NEWSET: u16 = 9;
const NFT_SET_MAP: u32 = 0x8;

fn proto_family(f: Family) -> ProtoFamily {
    match f {
        Family::Inet => ProtoFamily::Inet,
        Family::Ip => ProtoFamily::Ipv4,
        Family::Ip6 => ProtoFamily::Ipv6,
        Family::Arp => ProtoFamily::Arp,
        Family::Bridge => ProtoFamily::Bridge,
        Family::Netdev => ProtoFamily::NetDev,
    }
}

/// A named set or map declaration (the nftnl crate's `Set` cannot declare maps or
/// concatenated keys).
struct SetDecl {
    set: NonNull<sys::nftnl_set>,
    family: u16,
}

impl SetDecl {
    fn new(table: &TableRef, name: &str, kind: SetKind, id: u32) -> Option<SetDecl> {
        let t = CString::new(table.name.as_str()).ok()?;
        let n = CString::new(name).ok()?;
        let family = family_number(table.family);
        // SAFETY: a fresh libnftnl set object; strings are copied by libnftnl.
        unsafe {
            let s = NonNull::new(sys::nftnl_set_alloc())?;
            let p = s.as_ptr();
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, u32::from(family));
            sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, t.as_ptr());
            sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, n.as_ptr());
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, id);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, kind.key_type());
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, kind.key_len());
            let mut flags = 0;
            if let Some((data_type, data_len)) = kind.data() {
                flags |= NFT_SET_MAP;
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, data_type);
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, data_len);
            }
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FLAGS as u16, flags);
            Some(SetDecl { set: s, family })
        }
    }
}

impl Drop for SetDecl {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once.
        unsafe { sys::nftnl_set_free(self.set.as_ptr()) };
    }
}

// SAFETY: writes one NEWSET message into a buffer the batch sized for the largest message.
unsafe impl NlMsg for SetDecl {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16;
        // SAFETY: see the impl comment.
        unsafe {
            let hdr = sys::nftnl_nlmsg_build_hdr(buf as *mut c_char, NFT_MSG_NEWSET, self.family, flags, seq);
            sys::nftnl_set_nlmsg_build_payload(hdr, self.set.as_ptr());
        }
    }
}

/// Which hook, priority and type each chain has.
const CHAINS: [(&str, Hook, i32, ChainType); 4] = [
    ("prerouting", Hook::PreRouting, -100, ChainType::Nat),
    ("output", Hook::Out, -100, ChainType::Nat),
    ("postrouting", Hook::PostRouting, 100, ChainType::Nat),
    ("forward", Hook::Forward, 0, ChainType::Filter),
];

/// `dnat ip|ip6 to [ip daddr .] meta l4proto . th dport map @NAME`, as nft encodes it.
fn dnat_rule(rule: &mut Rule, map: &str, v4: bool, bound: bool) {
    let addr_len = if v4 { 4 } else { 16 };
    if bound {
        for e in expr::nfproto_is(v4) {
            rule.add_expr(&e);
        }
        rule.add_expr(&expr::payload(expr::PAYLOAD_NETWORK, if v4 { 16 } else { 24 }, addr_len, REG1));
        // The fields after an address start at the next free 32-bit register.
        let next = if v4 { reg32(1) } else { REG2 };
        let after = if v4 { reg32(2) } else { reg32(5) };
        rule.add_expr(&expr::meta(expr::META_L4PROTO, next));
        rule.add_expr(&expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, after));
    } else {
        for e in expr::fib_daddr_is_local() {
            rule.add_expr(&e);
        }
        rule.add_expr(&expr::meta(expr::META_L4PROTO, REG1));
        rule.add_expr(&expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, reg32(1)));
    }
    rule.add_expr(&expr::lookup(map, REG1, Some(REG1)));
    rule.add_expr(&expr::dnat(v4, REG1, if v4 { reg32(1) } else { REG2 }));
}

/// `ct status dnat ip|ip6 saddr . ip|ip6 daddr @NAME masquerade`.
fn hairpin_rule(rule: &mut Rule, set: &str, v4: bool) {
    for e in expr::ct_status_dnat() {
        rule.add_expr(&e);
    }
    for e in expr::nfproto_is(v4) {
        rule.add_expr(&e);
    }
    let (saddr, daddr, len, second) = if v4 { (12, 16, 4, reg32(1)) } else { (8, 24, 16, REG2) };
    rule.add_expr(&expr::payload(expr::PAYLOAD_NETWORK, saddr, len, REG1));
    rule.add_expr(&expr::payload(expr::PAYLOAD_NETWORK, daddr, len, second));
    rule.add_expr(&expr::lookup(set, REG1, None));
    rule.add_expr(&expr::masquerade());
}

fn comment(rule: &mut Rule, text: &str) {
    if let Ok(c) = CString::new(text) {
        let _ = rule.set_comment(c);
    }
}

/// Replaces the owned table atomically with the publish skeleton.
pub fn build_owned_table(nft: &mut Nft, owned: &TableRef) -> Result<(), NftError> {
    let name = CString::new(owned.name.as_str()).map_err(|_| NftError::Missing { set: owned.to_string() })?;
    let table = Table::new(&name, proto_family(owned.family));
    let mut batch = Batch::new();
    let mut infos = Vec::new();
    let mut add = |batch: &mut Batch, msg: &dyn NlMsgDyn, op: MsgType, what: String, step: &'static str| {
        msg.add_to(batch, op);
        infos.push(MsgInfo { set: what, op: step });
    };
    let shown = owned.to_string();
    add(&mut batch, &table, MsgType::Add, shown.clone(), "create table");
    add(&mut batch, &table, MsgType::Del, shown.clone(), "delete table");
    add(&mut batch, &table, MsgType::Add, shown.clone(), "create table");
    for (id, s) in owned_sets(owned).iter().enumerate() {
        let decl = SetDecl::new(owned, &s.id.name, s.id.kind, id as u32 + 1)
            .ok_or_else(|| NftError::Missing { set: s.id.to_string() })?;
        add(&mut batch, &decl, MsgType::Add, s.id.to_string(), "create set");
    }
    let chains: Vec<Chain<'_>> = CHAINS
        .iter()
        .map(|(n, hook, prio, ty)| {
            let cname = CString::new(*n).unwrap_or_default();
            let mut c = Chain::new(&cname, &table);
            c.set_hook(*hook, *prio);
            c.set_type(*ty);
            c.set_policy(Policy::Accept);
            c
        })
        .collect();
    for c in &chains {
        add(
            &mut batch,
            c,
            MsgType::Add,
            format!("{shown} chain {}", c.get_name().to_string_lossy()),
            "create chain",
        );
    }
    let (pre, out, post, fwd) = (&chains[0], &chains[1], &chains[2], &chains[3]);
    let sets = owned_sets(owned);
    let find = |kind: SetKind| sets.iter().find(|s| s.id.kind == kind).map(|s: &OwnedSet| s.id.name.clone());
    for chain in [pre, out] {
        for (kind, v4, bound) in [
            (SetKind::PublishBound4, true, true),
            (SetKind::PublishBound6, false, true),
            (SetKind::Publish4, true, false),
            (SetKind::Publish6, false, false),
        ] {
            let Some(map) = find(kind) else { continue };
            let mut r = Rule::new(chain);
            dnat_rule(&mut r, &map, v4, bound);
            comment(&mut r, &format!("docker.publish: {map}"));
            add(&mut batch, &r, MsgType::Add, format!("{shown} rule dnat {map}"), "add rule");
        }
    }
    for (kind, v4) in [(SetKind::Pair4, true), (SetKind::Pair6, false)] {
        let Some(set) = find(kind) else { continue };
        let mut r = Rule::new(post);
        hairpin_rule(&mut r, &set, v4);
        comment(&mut r, "docker.publish: hairpin");
        add(&mut batch, &r, MsgType::Add, format!("{shown} rule hairpin {set}"), "add rule");
    }
    let mut r = Rule::new(fwd);
    for e in expr::ct_status_dnat() {
        r.add_expr(&e);
    }
    r.add_expr(&expr::accept());
    comment(&mut r, "docker.publish: translated flows");
    add(&mut batch, &r, MsgType::Add, format!("{shown} rule forward"), "add rule");
    nft.commit(batch, &infos)
}

/// Removes the owned table if it exists (add-then-delete never fails on absence).
pub fn delete_owned_table(nft: &mut Nft, owned: &TableRef) -> Result<(), NftError> {
    let name = CString::new(owned.name.as_str()).map_err(|_| NftError::Missing { set: owned.to_string() })?;
    let table = Table::new(&name, proto_family(owned.family));
    let mut batch = Batch::new();
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    let infos = [
        MsgInfo { set: owned.to_string(), op: "create table" },
        MsgInfo { set: owned.to_string(), op: "delete table" },
    ];
    nft.commit(batch, &infos)
}

/// `Batch::add` takes `&impl NlMsg`; this lets one closure add tables, sets, chains, rules.
trait NlMsgDyn {
    fn add_to(&self, batch: &mut Batch, op: MsgType);
}

impl<T: NlMsg> NlMsgDyn for T {
    fn add_to(&self, batch: &mut Batch, op: MsgType) {
        batch.add(self, op);
    }
}
