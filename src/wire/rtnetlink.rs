//! rtnetlink bytes <-> typed messages (links and addresses), using neli's message types.

use crate::prefix::IpPrefix;
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Ifa, Iff, Ifla, RtAddrFamily, Rtm};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder};
use neli::{FromBytesWithInput, ToBytes};
use std::fmt;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::netlink::{self, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN};

/// A network interface as rtnetlink reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The lower layer is up (`IFF_LOWER_UP`): a cable, a peer, a radio association.
    pub carrier: bool,
}

/// An interface address with the attributes the address rule looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub prefix: IpPrefix,
    /// `ifa_scope`: 0 universe (global), 200 site, 253 link, 254 host.
    pub scope: u8,
    /// `IFA_F_*` flags (from `IFA_FLAGS` when present, else `ifa_flags`).
    pub flags: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtnlMessage {
    Link(Link),
    LinkGone {
        index: u32,
    },
    AddrNew(Address),
    AddrGone(Address),
    /// End of a dump with this sequence number.
    Done {
        seq: u32,
    },
    /// A dump or request failed (`errno` positive); `errno == 0` is an ACK.
    Error {
        seq: u32,
        errno: i32,
    },
    /// The dump was interrupted by a change (`NLM_F_DUMP_INTR`): it must be repeated.
    DumpInterrupted {
        seq: u32,
    },
    /// Messages of no interest (routes, neighbours, address families we skip).
    Ignored,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A header or length that does not fit the buffer: the rest of the buffer is dropped.
    Truncated { offset: usize },
    /// One message whose payload neli could not decode; the next ones are still read.
    BadPayload { msg_type: u16, reason: String },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated { offset } => write!(f, "truncated rtnetlink message at byte {offset}"),
            ParseError::BadPayload { msg_type, reason } => {
                write!(f, "undecodable rtnetlink message type {msg_type}: {reason}")
            }
        }
    }
}

/// Splits one `recv` buffer into messages and decodes each one.
pub fn parse(buf: &[u8]) -> Vec<Result<RtnlMessage, ParseError>> {
    let mut out = Vec::new();
    for m in netlink::split(buf) {
        let m = match m {
            Ok(m) => m,
            Err(offset) => {
                out.push(Err(ParseError::Truncated { offset }));
                break;
            }
        };
        if m.flags & NlmF::DUMP_INTR.bits() != 0 {
            out.push(Ok(RtnlMessage::DumpInterrupted { seq: m.seq }));
        }
        out.push(decode(m.msg_type, m.seq, m.payload));
    }
    out
}

fn decode(msg_type: u16, seq: u32, payload: &[u8]) -> Result<RtnlMessage, ParseError> {
    let bad = |reason: String| ParseError::BadPayload { msg_type, reason };
    match msg_type {
        NLMSG_NOOP => Ok(RtnlMessage::Ignored),
        NLMSG_DONE => Ok(RtnlMessage::Done { seq }),
        NLMSG_OVERRUN => Ok(RtnlMessage::Error { seq, errno: libc::ENOBUFS }),
        NLMSG_ERROR => {
            let code = payload
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad("short error message".into()))?;
            Ok(RtnlMessage::Error { seq, errno: code.saturating_neg() })
        }
        t if t == u16::from(Rtm::Newlink) || t == u16::from(Rtm::Dellink) => {
            let msg = Ifinfomsg::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
                .map_err(|e| bad(e.to_string()))?;
            let index = u32::try_from(*msg.ifi_index()).map_err(|_| bad("negative ifindex".into()))?;
            if t == u16::from(Rtm::Dellink) {
                return Ok(RtnlMessage::LinkGone { index });
            }
            let name = msg
                .rtattrs()
                .iter()
                .find(|a| *a.rta_type() == Ifla::Ifname)
                .map(|a| c_string(a.rta_payload().as_ref()))
                .ok_or_else(|| bad(format!("link {index} has no name")))?;
            let flags = msg.ifi_flags();
            Ok(RtnlMessage::Link(Link {
                index,
                name,
                up: flags.contains(Iff::UP),
                carrier: flags.contains(Iff::LOWERUP),
            }))
        }
        t if t == u16::from(Rtm::Newaddr) || t == u16::from(Rtm::Deladdr) => {
            let msg = Ifaddrmsg::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
                .map_err(|e| bad(e.to_string()))?;
            let Some(address) = address_of(&msg).map_err(bad)? else {
                return Ok(RtnlMessage::Ignored);
            };
            Ok(if t == u16::from(Rtm::Newaddr) {
                RtnlMessage::AddrNew(address)
            } else {
                RtnlMessage::AddrGone(address)
            })
        }
        _ => Ok(RtnlMessage::Ignored),
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `IFA_LOCAL` is the interface's own address (on point-to-point links `IFA_ADDRESS` is the
/// peer); IPv6 only sends `IFA_ADDRESS`. `IFA_FLAGS` carries flags beyond the first eight.
fn address_of(msg: &Ifaddrmsg) -> Result<Option<Address>, String> {
    let mut local = None;
    let mut address = None;
    let mut flags = u32::from(msg.ifa_flags().bits());
    for attr in msg.rtattrs().iter() {
        let p = attr.rta_payload().as_ref();
        match *attr.rta_type() {
            Ifa::Local => local = Some(p),
            Ifa::Address => address = Some(p),
            Ifa::Flags if p.len() >= 4 => flags = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]),
            _ => {}
        }
    }
    let Some(bytes) = local.or(address) else { return Ok(None) };
    let ip = match (*msg.ifa_family(), bytes.len()) {
        (RtAddrFamily::Inet, 4) => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        (RtAddrFamily::Inet6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(bytes);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        (RtAddrFamily::Inet | RtAddrFamily::Inet6, n) => return Err(format!("address of {n} bytes")),
        _ => return Ok(None),
    };
    let prefix = IpPrefix::new(ip, *msg.ifa_prefixlen())
        .ok_or_else(|| format!("prefix length {} too long for {ip}", msg.ifa_prefixlen()))?;
    Ok(Some(Address { index: *msg.ifa_index(), prefix, scope: u8::from(*msg.ifa_scope()), flags }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    Links,
    Addresses,
}

/// A dump request (`NLM_F_REQUEST | NLM_F_DUMP`) for all links or all addresses.
pub fn dump_request(kind: DumpKind, seq: u32) -> Vec<u8> {
    // Building these fixed messages cannot fail: every required field is set.
    let result = match kind {
        DumpKind::Links => IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .build()
            .map_err(|e| e.to_string())
            .and_then(|p| encode_dump(Rtm::Getlink, p, seq)),
        DumpKind::Addresses => IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Unspecified)
            .ifa_prefixlen(0)
            .ifa_scope(neli::consts::rtnl::RtScope::Universe)
            .ifa_index(0)
            .build()
            .map_err(|e| e.to_string())
            .and_then(|p| encode_dump(Rtm::Getaddr, p, seq)),
    };
    debug_assert!(result.is_ok(), "{result:?}");
    result.unwrap_or_default()
}

fn encode_dump<P: neli::Size + ToBytes + fmt::Debug>(
    ty: Rtm,
    payload: P,
    seq: u32,
) -> Result<Vec<u8>, String> {
    let msg = NlmsghdrBuilder::default()
        .nl_type(ty)
        .nl_flags(NlmF::REQUEST | NlmF::DUMP)
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(payload))
        .build()
        .map_err(|e| e.to_string())?;
    let mut out = Cursor::new(Vec::new());
    msg.to_bytes(&mut out).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_requests_have_sane_headers() {
        let m = dump_request(DumpKind::Links, 7);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), libc::RTM_GETLINK);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        let m = dump_request(DumpKind::Addresses, 8);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), libc::RTM_GETADDR);
        assert_eq!(m.len(), 16 + 8);
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(parse(&[1, 2, 3]), vec![Err(ParseError::Truncated { offset: 0 })]);
        let mut huge_len = vec![0u8; 32];
        huge_len[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(parse(&huge_len)[0], Err(ParseError::Truncated { .. })));
        // A NEWADDR with an empty payload: decoding fails for that message only.
        let mut m = vec![0u8; 16];
        m[0..4].copy_from_slice(&16u32.to_ne_bytes());
        m[4..6].copy_from_slice(&libc::RTM_NEWADDR.to_ne_bytes());
        assert!(matches!(parse(&m)[0], Err(ParseError::BadPayload { .. })));
        // Every prefix of every length of pseudo-random bytes.
        let noise = netlink::noise(12345, 512);
        for n in 0..noise.len() {
            let _ = parse(&noise[..n]);
        }
    }
}
