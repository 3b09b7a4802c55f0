//! nf_tables notifications (what `nft monitor` reads from `NFNLGRP_NFTABLES`), decoded just as
//! far as netmgrd needs: which table, chain, set or set elements a commit touched, and who
//! committed (`NEWGEN`: pid and process name). Pure; meets truncation and garbage without
//! panicking.

use super::netlink::{self, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN};
use std::fmt;

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_NEWGEN: u16 = 15;
/// Attribute numbers: the table name is 1 in every object; the object's own name differs.
const NFTA_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;
/// `struct nfgenmsg`: family, version, resource id.
const NFGENMSG_LEN: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Table,
    Chain,
    Rule,
    Set,
    /// Elements of a set: `count` of them in this message.
    Elements,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    New,
    Delete,
}

/// One object a commit touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ObjectKind,
    pub op: Op,
    /// `NFPROTO_*` of the table.
    pub family: u8,
    pub table: String,
    /// The chain or set name (none for tables; the chain for rules).
    pub name: Option<String>,
    /// Elements in this message (element messages only).
    pub count: u32,
}

/// What one notification says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    Change(Change),
    /// The end of a commit: who made it.
    NewGen {
        pid: u32,
        process: String,
    },
    /// An nf_tables message netmgrd does not follow (objects, flowtables).
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A header or attribute runs past the end of the buffer.
    Truncated { at: usize },
    /// The kernel says it dropped messages.
    Overrun,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { at } => write!(f, "truncated nf_tables notification at byte {at}"),
            DecodeError::Overrun => f.write_str("the kernel reported an overrun"),
        }
    }
}

/// Decodes every notification in one datagram. Non-nf_tables and control messages are
/// skipped; a truncated message ends the buffer with an error (events were lost).
pub fn parse(buf: &[u8]) -> Vec<Result<Notification, DecodeError>> {
    let mut out = Vec::new();
    for m in netlink::split(buf) {
        let m = match m {
            Ok(m) => m,
            Err(at) => {
                out.push(Err(DecodeError::Truncated { at }));
                break;
            }
        };
        match m.msg_type {
            NLMSG_NOOP | NLMSG_DONE | NLMSG_ERROR => continue,
            NLMSG_OVERRUN => {
                out.push(Err(DecodeError::Overrun));
                continue;
            }
            t if t >> 8 != NFNL_SUBSYS_NFTABLES => continue,
            _ => {}
        }
        out.push(decode_one(m.msg_type & 0xff, m.payload));
    }
    out
}

fn decode_one(msg: u16, payload: &[u8]) -> Result<Notification, DecodeError> {
    let truncated = DecodeError::Truncated { at: 0 };
    let family = *payload.first().ok_or(truncated.clone())?;
    let attrs = Attrs::new(payload.get(NFGENMSG_LEN..).ok_or(truncated)?);
    let (kind, op, name_attr) = match msg {
        NFT_MSG_NEWTABLE => (ObjectKind::Table, Op::New, None),
        NFT_MSG_DELTABLE => (ObjectKind::Table, Op::Delete, None),
        NFT_MSG_NEWCHAIN => (ObjectKind::Chain, Op::New, Some(NFTA_CHAIN_NAME)),
        NFT_MSG_DELCHAIN => (ObjectKind::Chain, Op::Delete, Some(NFTA_CHAIN_NAME)),
        NFT_MSG_NEWRULE => (ObjectKind::Rule, Op::New, Some(NFTA_RULE_CHAIN)),
        NFT_MSG_DELRULE => (ObjectKind::Rule, Op::Delete, Some(NFTA_RULE_CHAIN)),
        NFT_MSG_NEWSET => (ObjectKind::Set, Op::New, Some(NFTA_SET_NAME)),
        NFT_MSG_DELSET => (ObjectKind::Set, Op::Delete, Some(NFTA_SET_NAME)),
        NFT_MSG_NEWSETELEM => (ObjectKind::Elements, Op::New, Some(NFTA_SET_ELEM_LIST_SET)),
        NFT_MSG_DELSETELEM => (ObjectKind::Elements, Op::Delete, Some(NFTA_SET_ELEM_LIST_SET)),
        NFT_MSG_NEWGEN => {
            let pid = attrs.get(NFTA_GEN_PROC_PID)?.and_then(be_u32).unwrap_or(0);
            let process = attrs.get(NFTA_GEN_PROC_NAME)?.map(c_string).unwrap_or_default();
            return Ok(Notification::NewGen { pid, process });
        }
        _ => return Ok(Notification::Other),
    };
    let table = attrs.get(NFTA_TABLE)?.map(c_string).unwrap_or_default();
    let name = match name_attr {
        Some(a) => attrs.get(a)?.map(c_string),
        None => None,
    };
    let count = if kind == ObjectKind::Elements {
        attrs.get(NFTA_SET_ELEM_LIST_ELEMENTS)?.map(|list| Attrs::new(list).count()).unwrap_or(0)
    } else {
        0
    };
    Ok(Notification::Change(Change { kind, op, family, table, name, count }))
}

/// The attributes of one message (type without the nested/byte-order bits).
struct Attrs<'a>(&'a [u8]);

impl<'a> Attrs<'a> {
    fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs(buf)
    }

    /// Iterates (type, payload); stops with an error on an attribute that does not fit.
    fn iter(&self) -> impl Iterator<Item = Result<(u16, &'a [u8]), DecodeError>> + 'a {
        let buf = self.0;
        let mut at = 0usize;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || at + 4 > buf.len() {
                return None;
            }
            let len = usize::from(u16::from_ne_bytes([buf[at], buf[at + 1]]));
            let ty = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & 0x3fff;
            if len < 4 || at + len > buf.len() {
                failed = true;
                return Some(Err(DecodeError::Truncated { at }));
            }
            let payload = &buf[at + 4..at + len];
            at += (len + 3) & !3;
            Some(Ok((ty, payload)))
        })
    }

    fn get(&self, ty: u16) -> Result<Option<&'a [u8]>, DecodeError> {
        for a in self.iter() {
            let (t, payload) = a?;
            if t == ty {
                return Ok(Some(payload));
            }
        }
        Ok(None)
    }

    fn count(&self) -> u32 {
        self.iter().take_while(Result::is_ok).count() as u32
    }
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated string attribute (lossy: names are ASCII in practice).
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let len = 4 + payload.len();
        let mut v = (len as u16).to_ne_bytes().to_vec();
        v.extend(ty.to_ne_bytes());
        v.extend(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn msg(msg: u16, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = vec![family, 0, 0, 0];
        for a in attrs {
            payload.extend(a);
        }
        let len = 16 + payload.len();
        let mut v = (len as u32).to_ne_bytes().to_vec();
        v.extend(((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
        v.extend(0u16.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v.extend(payload);
        v
    }

    #[test]
    fn decodes_changes_and_the_committer() {
        let elems = [attr(1, &[]), attr(1, &[])].concat();
        let mut buf = msg(NFT_MSG_DELTABLE, 1, &[attr(1, b"filter\0")]);
        buf.extend(msg(NFT_MSG_NEWSET, 1, &[attr(1, b"filter\0"), attr(2, b"wan_ips\0")]));
        buf.extend(msg(
            NFT_MSG_NEWSETELEM,
            1,
            &[attr(1, b"filter\0"), attr(2, b"wan_ips\0"), attr(3 | 0x8000, &elems)],
        ));
        buf.extend(msg(
            NFT_MSG_NEWGEN,
            0,
            &[attr(1, &7u32.to_be_bytes()), attr(2, &4242u32.to_be_bytes()), attr(3, b"nft\0")],
        ));
        let got: Vec<_> = parse(&buf).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got[0],
            Notification::Change(Change {
                kind: ObjectKind::Table,
                op: Op::Delete,
                family: 1,
                table: "filter".into(),
                name: None,
                count: 0
            })
        );
        assert!(
            matches!(&got[1], Notification::Change(c) if c.kind == ObjectKind::Set && c.name.as_deref() == Some("wan_ips"))
        );
        assert!(matches!(&got[2], Notification::Change(c) if c.kind == ObjectKind::Elements && c.count == 2));
        assert_eq!(got[3], Notification::NewGen { pid: 4242, process: "nft".into() });
    }

    #[test]
    fn every_truncation_is_an_error_or_fewer_messages_never_a_panic() {
        let mut buf = msg(NFT_MSG_NEWSET, 1, &[attr(1, b"filter\0"), attr(2, b"wan_ips\0")]);
        buf.extend(msg(NFT_MSG_NEWGEN, 0, &[attr(2, &1u32.to_be_bytes()), attr(3, b"nft\0")]));
        for cut in 0..buf.len() {
            let _ = parse(&buf[..cut]);
        }
        // A message whose attribute claims more than there is.
        let mut bad = msg(NFT_MSG_NEWSET, 1, &[attr(1, b"filter\0")]);
        bad[20] = 200;
        assert!(parse(&bad).iter().any(|r| r.is_err()));
    }
}
