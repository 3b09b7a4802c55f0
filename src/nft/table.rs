//! The table netmgrd owns (`nftables.owned_table`), built from its description
//! (`ruleset::OwnedTable`) in one transaction: add table, delete it, add it again, then sets,
//! their current elements, chains and rules. It is replaced atomically, a crashed earlier
//! instance leaves nothing stale, and no packet sees a half-built table.

use super::elems::{addr_bytes, ElemList};
use super::expr::{self, reg32, Expr, NatKind, REG1, REG2};
use super::socket::{MsgInfo, Nft};
use super::{family_number, NftError};
use crate::elements::Desired;
use crate::elements::SetId;
use crate::elements::{Family, TableRef};
use crate::inet::IpFamily;
use crate::ruleset::{Hook as RuleHook, OwnedTable, PublishKey, Stmt, HAIRPIN_MARK};
use nftnl::nftnl_sys as sys;
use nftnl::{Batch, Chain, ChainType, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table};
use std::ffi::{c_void, CString};
use std::net::IpAddr;
use std::os::raw::c_char;
use std::ptr::NonNull;

const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_SET_INTERVAL: u32 = 0x4;
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

/// A named set or map declaration (the nftnl crate's `Set` cannot declare maps, intervals
/// or concatenated keys).
struct SetDecl {
    set: NonNull<sys::nftnl_set>,
    family: u16,
}

impl SetDecl {
    fn new(id: &SetId, seq_id: u32) -> Option<SetDecl> {
        let t = CString::new(id.table.name.as_str()).ok()?;
        let n = CString::new(id.name.as_str()).ok()?;
        let family = family_number(id.table.family);
        let kind = id.kind;
        // SAFETY: a fresh libnftnl set object; strings are copied by libnftnl.
        unsafe {
            let s = NonNull::new(sys::nftnl_set_alloc())?;
            let p = s.as_ptr();
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, u32::from(family));
            sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, t.as_ptr());
            sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, n.as_ptr());
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, seq_id);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, kind.key_type());
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, kind.key_len());
            let mut flags = 0;
            if let Some((data_type, data_len)) = kind.data() {
                flags |= NFT_SET_MAP;
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, data_type);
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, data_len);
            }
            if kind.is_interval() {
                flags |= NFT_SET_INTERVAL;
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

// SAFETY: writes one NEWSET/DELSET message into a buffer the batch sized for the largest
// message.
unsafe impl NlMsg for SetDecl {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let (ty, flags) = match msg_type {
            MsgType::Add => (NFT_MSG_NEWSET, libc::NLM_F_CREATE | libc::NLM_F_ACK),
            MsgType::Del => (NFT_MSG_DELSET, libc::NLM_F_ACK),
        };
        // SAFETY: see the impl comment.
        unsafe {
            let hdr = sys::nftnl_nlmsg_build_hdr(buf as *mut c_char, ty, self.family, flags as u16, seq);
            sys::nftnl_set_nlmsg_build_payload(hdr, self.set.as_ptr());
        }
    }
}

/// The userdata netmgrd puts on the table it owns, so it never replaces a table it did not
/// create: nft's own table-comment TLV (type 0, length, text with its NUL), so `nft list`
/// shows it as `comment "netmgrd owned table"` and `nft -f` of `check --print` sets it too.
pub const OWNED_TABLE_MARK: &[u8] = b"\x00\x14netmgrd owned table\x00";
const NFT_MSG_NEWTABLE: u16 = 0;

/// NEWTABLE with netmgrd's userdata mark (the nftnl crate's `Table` cannot carry userdata).
struct MarkedTable {
    table: NonNull<sys::nftnl_table>,
    family: u16,
}

impl MarkedTable {
    fn new(owned: &TableRef) -> Option<MarkedTable> {
        let name = CString::new(owned.name.as_str()).ok()?;
        // SAFETY: a fresh libnftnl table object; libnftnl copies the name and the userdata.
        unsafe {
            let t = NonNull::new(sys::nftnl_table_alloc())?;
            sys::nftnl_table_set_str(t.as_ptr(), sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
            sys::nftnl_table_set_data(
                t.as_ptr(),
                sys::NFTNL_TABLE_USERDATA as u16,
                OWNED_TABLE_MARK.as_ptr() as *const c_void,
                OWNED_TABLE_MARK.len() as u32,
            );
            Some(MarkedTable { table: t, family: family_number(owned.family) })
        }
    }
}

impl Drop for MarkedTable {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once.
        unsafe { sys::nftnl_table_free(self.table.as_ptr()) };
    }
}

// SAFETY: writes one NEWTABLE message into a buffer the batch sized for the largest message.
unsafe impl NlMsg for MarkedTable {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        // SAFETY: see the impl comment.
        unsafe {
            let flags = (libc::NLM_F_CREATE | libc::NLM_F_ACK) as u16;
            let hdr =
                sys::nftnl_nlmsg_build_hdr(buf as *mut c_char, NFT_MSG_NEWTABLE, self.family, flags, seq);
            sys::nftnl_table_nlmsg_build_payload(hdr, self.table.as_ptr());
        }
    }
}

/// Removes every element of a set: DELSETELEM naming the set and no elements.
struct FlushSet<'a>(&'a SetDecl);

// SAFETY: writes one DELSETELEM message (table and set name only) into the batch buffer.
unsafe impl NlMsg for FlushSet<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        // SAFETY: see the impl comment.
        unsafe {
            let hdr = sys::nftnl_nlmsg_build_hdr(
                buf as *mut c_char,
                NFT_MSG_DELSETELEM,
                self.0.family,
                libc::NLM_F_ACK as u16,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload(hdr, self.0.set.as_ptr());
        }
    }
}

fn ifname_bytes(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.push(0);
    b
}

/// Offsets of the source and destination address in the network header, and their length.
fn addr_offsets(family: IpFamily) -> (u32, u32, u32) {
    match family {
        IpFamily::V4 => (12, 16, 4),
        IpFamily::V6 => (8, 24, 16),
    }
}

/// The expressions of one statement, in the register use `nft --debug=netlink` shows.
fn exprs(stmt: &Stmt) -> Vec<Expr> {
    match stmt {
        Stmt::NfProto(family) => expr::nfproto_is(*family).into(),
        Stmt::IifName(n) => vec![expr::meta(expr::META_IIFNAME, REG1), expr::cmp_eq(REG1, &ifname_bytes(n))],
        Stmt::IifNameNot(n) => {
            vec![expr::meta(expr::META_IIFNAME, REG1), expr::cmp_neq(REG1, &ifname_bytes(n))]
        }
        Stmt::OifName(n) => vec![expr::meta(expr::META_OIFNAME, REG1), expr::cmp_eq(REG1, &ifname_bytes(n))],
        Stmt::L4Proto(p) => vec![expr::meta(expr::META_L4PROTO, REG1), expr::cmp_eq(REG1, &[p.number()])],
        Stmt::Dport(a, b) => {
            let load = expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, REG1);
            if a == b {
                vec![load, expr::cmp_eq(REG1, &a.to_be_bytes())]
            } else {
                // Ports are big-endian in the packet: a byte-wise compare orders them right.
                vec![
                    load,
                    expr::cmp(REG1, expr::CMP_GTE, &a.to_be_bytes()),
                    expr::cmp(REG1, expr::CMP_LTE, &b.to_be_bytes()),
                ]
            }
        }
        Stmt::Saddr(p) | Stmt::Daddr(p) => {
            let family = IpFamily::of(&p.addr);
            let (s, d, len) = addr_offsets(family);
            let off = if matches!(stmt, Stmt::Saddr(_)) { s } else { d };
            let mut v = vec![expr::payload(expr::PAYLOAD_NETWORK, off, len, REG1)];
            if u32::from(p.len) < len * 8 {
                let mask =
                    addr_bytes(crate::prefix::IpPrefix { addr: mask_all(family), len: p.len }.network());
                v.push(expr::bitwise(REG1, &mask, &vec![0; len as usize]));
            }
            v.push(expr::cmp_eq(REG1, &addr_bytes(p.network())));
            v
        }
        Stmt::SaddrSet { set, family } | Stmt::DaddrSet { set, family } => {
            let (s, d, len) = addr_offsets(*family);
            let off = if matches!(stmt, Stmt::SaddrSet { .. }) { s } else { d };
            vec![expr::payload(expr::PAYLOAD_NETWORK, off, len, REG1), expr::lookup(set, REG1, None)]
        }
        Stmt::PairSet { set, family } => {
            let (s, d, len) = addr_offsets(*family);
            let second = after_addr(*family);
            vec![
                expr::payload(expr::PAYLOAD_NETWORK, s, len, REG1),
                expr::payload(expr::PAYLOAD_NETWORK, d, len, second),
                expr::lookup(set, REG1, None),
            ]
        }
        Stmt::DaddrLocal => expr::fib_daddr_is_local().into(),
        Stmt::CtStatusDnat => expr::ct_status_dnat().into(),
        Stmt::CtEstablished => expr::ct_established().into(),
        Stmt::SetHairpinMark => vec![
            expr::meta(expr::META_MARK, REG1),
            expr::bitwise(REG1, &(!HAIRPIN_MARK).to_ne_bytes(), &HAIRPIN_MARK.to_ne_bytes()),
            expr::meta_set(expr::META_MARK, REG1),
        ],
        Stmt::HasHairpinMark => vec![
            expr::meta(expr::META_MARK, REG1),
            expr::bitwise(REG1, &HAIRPIN_MARK.to_ne_bytes(), &0u32.to_ne_bytes()),
            expr::cmp_neq(REG1, &0u32.to_ne_bytes()),
        ],
        Stmt::Dnat { to, port } => {
            let mut v = vec![expr::immediate(REG1, &addr_bytes(*to))];
            if let Some(p) = port {
                v.push(expr::immediate(REG2, &p.to_be_bytes()));
            }
            v.push(expr::nat(NatKind::Dnat, IpFamily::of(to), REG1, port.map(|_| REG2)));
            v
        }
        Stmt::DnatMap { map, family, key } => {
            let mut v = Vec::new();
            match key {
                PublishKey::HostProtoPort => {
                    let (_, d, len) = addr_offsets(*family);
                    v.push(expr::payload(expr::PAYLOAD_NETWORK, d, len, REG1));
                    // The fields after an address start at the next free 32-bit register.
                    let (next, after) = match family {
                        IpFamily::V4 => (reg32(1), reg32(2)),
                        IpFamily::V6 => (REG2, reg32(5)),
                    };
                    v.push(expr::meta(expr::META_L4PROTO, next));
                    v.push(expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, after));
                }
                PublishKey::ProtoPort => {
                    v.push(expr::meta(expr::META_L4PROTO, REG1));
                    v.push(expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, reg32(1)));
                }
            }
            v.push(expr::lookup(map, REG1, Some(REG1)));
            v.push(expr::nat(NatKind::Dnat, *family, REG1, Some(after_addr(*family))));
            v
        }
        Stmt::DnatIfMap { map, family } => vec![
            expr::meta(expr::META_IIFNAME, REG1),
            expr::meta(expr::META_L4PROTO, REG2),
            expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, reg32(5)),
            expr::lookup(map, REG1, Some(REG1)),
            expr::nat(NatKind::Dnat, *family, REG1, Some(after_addr(*family))),
        ],
        Stmt::Snat { to } => vec![
            expr::immediate(REG1, &addr_bytes(*to)),
            expr::nat(NatKind::Snat, IpFamily::of(to), REG1, None),
        ],
        Stmt::Masquerade => vec![expr::masquerade()],
        Stmt::Accept => vec![expr::accept()],
        Stmt::Drop => vec![expr::drop_verdict()],
    }
}

fn mask_all(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(std::net::Ipv4Addr::BROADCAST),
        IpFamily::V6 => IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX)),
    }
}

/// The register after an address loaded into `REG1`: the next 32-bit one for IPv4, the next
/// 128-bit one for IPv6.
fn after_addr(family: IpFamily) -> u32 {
    match family {
        IpFamily::V4 => reg32(1),
        IpFamily::V6 => REG2,
    }
}

/// Whether `previous` (what we built before) has the same chains as `spec`, so the table can
/// be updated in place.
fn same_chains(previous: &OwnedTable, spec: &OwnedTable) -> bool {
    previous.table == spec.table
        && previous.chains.len() == spec.chains.len()
        && previous.chains.iter().zip(&spec.chains).all(|(a, b)| {
            (a.name, a.hook, a.priority, a.nat, a.policy_drop)
                == (b.name, b.hook, b.priority, b.nat, b.policy_drop)
        })
}

/// Makes the owned table `spec` with its sets holding `elements`, in one transaction.
///
/// Without `previous` (start-up, table renamed, chains changed) the table is replaced whole:
/// add, delete, add. With the same chains as `previous` (a reload) the chains stay and only
/// their rules and the sets are replaced: base chains are never unhooked and re-hooked, so
/// traffic never meets a chain that is half there.
pub fn build_owned_table(
    nft: &mut Nft,
    spec: &OwnedTable,
    elements: &Desired,
    previous: Option<&OwnedTable>,
) -> Result<(), NftError> {
    let owned = &spec.table;
    let shown = owned.to_string();
    let name = CString::new(owned.name.as_str()).map_err(|_| NftError::Missing { set: shown.clone() })?;
    let table = Table::new(&name, proto_family(owned.family));
    let marked = MarkedTable::new(owned).ok_or_else(|| NftError::Missing { set: shown.clone() })?;
    let in_place = previous.filter(|p| same_chains(p, spec));
    let mut batch = Batch::new();
    let mut infos = Vec::new();
    let mut add = |batch: &mut Batch, msg: &dyn NlMsgDyn, op: MsgType, what: String, step: &'static str| {
        msg.add_to(batch, op);
        infos.push(MsgInfo { set: what, op: step });
    };
    let chains: Vec<Chain<'_>> = spec
        .chains
        .iter()
        .map(|c| {
            let cname = CString::new(c.name).unwrap_or_default();
            let mut chain = Chain::new(&cname, &table);
            let hook = match c.hook {
                RuleHook::Prerouting => Hook::PreRouting,
                RuleHook::Output => Hook::Out,
                RuleHook::Postrouting => Hook::PostRouting,
                RuleHook::Forward => Hook::Forward,
            };
            chain.set_hook(hook, c.priority);
            chain.set_type(if c.nat { ChainType::Nat } else { ChainType::Filter });
            chain.set_policy(if c.policy_drop { Policy::Drop } else { Policy::Accept });
            chain
        })
        .collect();
    match in_place {
        Some(prev) => {
            // Rules first: a set can only go once no rule refers to it.
            for (c, spec_chain) in chains.iter().zip(&spec.chains) {
                add(
                    &mut batch,
                    &Rule::new(c),
                    MsgType::Del,
                    format!("{shown} chain {}", spec_chain.name),
                    "flush chain",
                );
            }
            for (i, id) in prev.sets.iter().enumerate() {
                let decl = SetDecl::new(id, i as u32 + 1)
                    .ok_or_else(|| NftError::Missing { set: id.to_string() })?;
                if spec.sets.contains(id) {
                    add(&mut batch, &FlushSet(&decl), MsgType::Del, id.to_string(), "flush set");
                } else {
                    add(&mut batch, &decl, MsgType::Del, id.to_string(), "delete set");
                }
            }
        }
        None => {
            add(&mut batch, &table, MsgType::Add, shown.clone(), "create table");
            add(&mut batch, &table, MsgType::Del, shown.clone(), "delete table");
            add(&mut batch, &marked, MsgType::Add, shown.clone(), "create table");
        }
    }
    for (i, id) in spec.sets.iter().enumerate() {
        let decl = SetDecl::new(id, i as u32 + 1).ok_or_else(|| NftError::Missing { set: id.to_string() })?;
        // NEWSET without EXCL: a set kept from `previous` stays, a new one is created.
        add(&mut batch, &decl, MsgType::Add, id.to_string(), "create set");
        let elems: Vec<_> = elements.get(id).map(|e| e.iter().copied().collect()).unwrap_or_default();
        if !elems.is_empty() {
            let list = ElemList::new(id, &elems).ok_or_else(|| NftError::Missing { set: id.to_string() })?;
            while list.has_more() {
                add(&mut batch, &list, MsgType::Add, id.to_string(), "add elements");
            }
        }
    }
    if in_place.is_none() {
        for (c, spec_chain) in chains.iter().zip(&spec.chains) {
            add(&mut batch, c, MsgType::Add, format!("{shown} chain {}", spec_chain.name), "create chain");
        }
    }
    for (c, spec_chain) in chains.iter().zip(&spec.chains) {
        for r in &spec_chain.rules {
            let mut rule = Rule::new(c);
            for s in &r.stmts {
                for e in exprs(s) {
                    rule.add_expr(&e);
                }
            }
            if let Ok(text) = CString::new(r.comment.as_str()) {
                let _ = rule.set_comment(text);
            }
            add(&mut batch, &rule, MsgType::Add, format!("rule `{}`", r.comment), "add rule");
        }
    }
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
