//! Routes and routing policy rules over rtnetlink (`RTM_*ROUTE`, `RTM_*RULE`): decoded from
//! and encoded to bytes by hand (`struct rtmsg` / `struct fib_rule_hdr` and their attributes),
//! since neli has no type for rules. Pure.

use super::netlink::{self, NLMSG_DONE, NLMSG_ERROR};
use crate::prefix::IpPrefix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;
pub const RTM_GETRULE: u16 = 34;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;
const FRA_PROTOCOL: u16 = 21;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RTN_UNICAST: u8 = 1;
pub const RTPROT_KERNEL: u8 = 2;
/// `FR_ACT_TO_TBL`: a rule that looks up a table.
const FR_ACT_TO_TBL: u8 = 1;

/// A route, with the fields netmgrd reads and writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub table: u32,
    /// `None`: the default route of its family.
    pub dst: Option<IpPrefix>,
    pub family: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub protocol: u8,
    pub scope: u8,
    pub kind: u8,
    pub metric: Option<u32>,
    pub prefsrc: Option<IpAddr>,
}

/// A routing policy rule (`from A lookup T`, `to A lookup T`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub family: u8,
    pub priority: u32,
    pub table: u32,
    pub src: Option<IpPrefix>,
    pub dst: Option<IpPrefix>,
    pub protocol: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteMessage {
    NewRoute(Route),
    DelRoute(Route),
    NewRule(Rule),
    DelRule(Rule),
    Done {
        seq: u32,
    },
    /// `errno` 0: an ACK.
    Ack {
        seq: u32,
        errno: i32,
        message: Option<String>,
    },
    Other,
}

fn attrs(mut p: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let h = p.get(..4)?;
        let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
        let ty = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
        if len < 4 || len > p.len() {
            return None;
        }
        let value = &p[4..len];
        p = p.get((len + 3) & !3..).unwrap_or(&[]);
        Some((ty, value))
    })
}

fn ip(family: u8, b: &[u8]) -> Option<IpAddr> {
    match (family, b.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        (AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

fn decode_route(p: &[u8]) -> Option<Route> {
    let h = p.get(..12)?;
    let (family, dst_len, table8, protocol, scope, kind) = (h[0], h[1], h[4], h[5], h[6], h[7]);
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    let mut r = Route {
        table: u32::from(table8),
        dst: None,
        family,
        gateway: None,
        oif: None,
        protocol,
        scope,
        kind,
        metric: None,
        prefsrc: None,
    };
    for (ty, v) in attrs(&p[12..]) {
        match ty {
            RTA_DST => r.dst = ip(family, v).and_then(|a| IpPrefix::new(a, dst_len)),
            RTA_OIF => r.oif = u32_of(v),
            RTA_GATEWAY => r.gateway = ip(family, v),
            RTA_PRIORITY => r.metric = u32_of(v),
            RTA_PREFSRC => r.prefsrc = ip(family, v),
            RTA_TABLE => r.table = u32_of(v).unwrap_or(r.table),
            _ => {}
        }
    }
    Some(r)
}

fn decode_rule(p: &[u8]) -> Option<Rule> {
    let h = p.get(..12)?;
    let (family, dst_len, src_len, table8, action) = (h[0], h[1], h[2], h[4], h[7]);
    if (family != AF_INET && family != AF_INET6) || action != FR_ACT_TO_TBL {
        return None;
    }
    let mut r = Rule { family, priority: 0, table: u32::from(table8), src: None, dst: None, protocol: 0 };
    for (ty, v) in attrs(&p[12..]) {
        match ty {
            FRA_DST => r.dst = ip(family, v).and_then(|a| IpPrefix::new(a, dst_len)),
            FRA_SRC => r.src = ip(family, v).and_then(|a| IpPrefix::new(a, src_len)),
            FRA_PRIORITY => r.priority = u32_of(v).unwrap_or(0),
            FRA_TABLE => r.table = u32_of(v).unwrap_or(r.table),
            FRA_PROTOCOL => r.protocol = v.first().copied().unwrap_or(0),
            _ => {}
        }
    }
    Some(r)
}

/// Decodes every message of one `recv` buffer (garbage ends the buffer, never panics).
pub fn parse(buf: &[u8]) -> Vec<RouteMessage> {
    let mut out = Vec::new();
    for m in netlink::split(buf) {
        let Ok(m) = m else { break };
        out.push(match m.msg_type {
            NLMSG_DONE => RouteMessage::Done { seq: m.seq },
            NLMSG_ERROR => match netlink::parse_ack(&m) {
                Some(a) => RouteMessage::Ack { seq: m.seq, errno: a.errno, message: a.message },
                None => RouteMessage::Other,
            },
            RTM_NEWROUTE => decode_route(m.payload).map_or(RouteMessage::Other, RouteMessage::NewRoute),
            RTM_DELROUTE => decode_route(m.payload).map_or(RouteMessage::Other, RouteMessage::DelRoute),
            RTM_NEWRULE => decode_rule(m.payload).map_or(RouteMessage::Other, RouteMessage::NewRule),
            RTM_DELRULE => decode_rule(m.payload).map_or(RouteMessage::Other, RouteMessage::DelRule),
            _ => RouteMessage::Other,
        });
    }
    out
}

fn header(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) {
    out.extend(0u32.to_ne_bytes()); // length, set at the end
    out.extend(ty.to_ne_bytes());
    out.extend(flags.to_ne_bytes());
    out.extend(seq.to_ne_bytes());
    out.extend(0u32.to_ne_bytes());
}

fn attr(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    out.extend(((4 + value.len()) as u16).to_ne_bytes());
    out.extend(ty.to_ne_bytes());
    out.extend(value);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_ne_bytes());
    out
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// `RTM_NEWROUTE` (create or replace) or `RTM_DELROUTE`, with an ACK asked for.
pub fn route_request(new: bool, r: &Route, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    let flags = NLM_F_REQUEST | NLM_F_ACK | if new { NLM_F_CREATE | NLM_F_REPLACE } else { 0 };
    header(&mut out, if new { RTM_NEWROUTE } else { RTM_DELROUTE }, flags, seq);
    let dst_len = r.dst.map_or(0, |d| d.len);
    out.extend([r.family, dst_len, 0, 0, 0, r.protocol, r.scope, r.kind]);
    out.extend(0u32.to_ne_bytes());
    attr(&mut out, RTA_TABLE, &r.table.to_ne_bytes());
    if let Some(d) = r.dst {
        attr(&mut out, RTA_DST, &ip_bytes(d.addr));
    }
    if let Some(g) = r.gateway {
        attr(&mut out, RTA_GATEWAY, &ip_bytes(g));
    }
    if let Some(o) = r.oif {
        attr(&mut out, RTA_OIF, &o.to_ne_bytes());
    }
    if let Some(m) = r.metric {
        attr(&mut out, RTA_PRIORITY, &m.to_ne_bytes());
    }
    if let Some(s) = r.prefsrc {
        attr(&mut out, RTA_PREFSRC, &ip_bytes(s));
    }
    finish(out)
}

/// `RTM_NEWRULE` (exclusive: an identical rule answers `EEXIST`) or `RTM_DELRULE`.
pub fn rule_request(new: bool, r: &Rule, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    let flags = NLM_F_REQUEST | NLM_F_ACK | if new { NLM_F_CREATE | NLM_F_EXCL } else { 0 };
    header(&mut out, if new { RTM_NEWRULE } else { RTM_DELRULE }, flags, seq);
    let (dst_len, src_len) = (r.dst.map_or(0, |d| d.len), r.src.map_or(0, |s| s.len));
    out.extend([r.family, dst_len, src_len, 0, 0, 0, 0, FR_ACT_TO_TBL]);
    out.extend(0u32.to_ne_bytes());
    attr(&mut out, FRA_TABLE, &r.table.to_ne_bytes());
    attr(&mut out, FRA_PRIORITY, &r.priority.to_ne_bytes());
    attr(&mut out, FRA_PROTOCOL, &[r.protocol]);
    if let Some(s) = r.src {
        attr(&mut out, FRA_SRC, &ip_bytes(s.addr));
    }
    if let Some(d) = r.dst {
        attr(&mut out, FRA_DST, &ip_bytes(d.addr));
    }
    finish(out)
}

/// A dump of every route (`rules == false`) or every rule, both families.
pub fn dump_request(rules: bool, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    header(&mut out, if rules { RTM_GETRULE } else { RTM_GETROUTE }, NLM_F_REQUEST | NLM_F_DUMP, seq);
    out.extend([0u8; 12]);
    finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route {
            table: 10002,
            dst: Some("198.51.100.0/24".parse().unwrap()),
            family: AF_INET,
            gateway: None,
            oif: Some(3),
            protocol: 233,
            scope: RT_SCOPE_LINK,
            kind: RTN_UNICAST,
            metric: None,
            prefsrc: Some("198.51.100.1".parse().unwrap()),
        }
    }

    #[test]
    fn requests_decode_back_to_what_was_encoded() {
        let r = route();
        let bytes = route_request(true, &r, 9);
        assert_eq!(u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len());
        assert_eq!(parse(&bytes), vec![RouteMessage::NewRoute(r.clone())]);
        let v6 = Route {
            dst: None,
            family: AF_INET6,
            gateway: Some("2001:db8:1::2".parse().unwrap()),
            scope: RT_SCOPE_UNIVERSE,
            prefsrc: None,
            metric: Some(1024),
            ..r
        };
        assert_eq!(parse(&route_request(false, &v6, 1)), vec![RouteMessage::DelRoute(v6)]);
        let rule = Rule {
            family: AF_INET6,
            priority: 1000,
            table: 10002,
            src: Some("2001:db8:1::1/128".parse().unwrap()),
            dst: None,
            protocol: 233,
        };
        assert_eq!(parse(&rule_request(true, &rule, 2)), vec![RouteMessage::NewRule(rule.clone())]);
        let to = Rule { src: None, dst: Some("192.0.2.1/32".parse().unwrap()), family: AF_INET, ..rule };
        assert_eq!(parse(&rule_request(false, &to, 3)), vec![RouteMessage::DelRule(to)]);
        assert_eq!(dump_request(true, 4).len(), 28);
    }

    #[test]
    fn garbage_never_panics() {
        let noise = super::netlink::noise(99, 400);
        for n in 0..noise.len() {
            let _ = parse(&noise[..n]);
        }
        // A valid header around a short payload.
        let mut m = vec![0u8; 20];
        m[..4].copy_from_slice(&20u32.to_ne_bytes());
        m[4..6].copy_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        assert_eq!(parse(&m), vec![RouteMessage::Other]);
    }
}
