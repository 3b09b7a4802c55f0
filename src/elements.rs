//! nftables vocabulary: tables (`Family`, `TableRef`), sets (`SetId`, `SetKind`), element
//! values (`Elem`) and the desired elements of every managed set (`Desired`). Pure, and below
//! the config, the plan and the nft edge, which all speak it.

use crate::inet::{IpFamily, L4Proto};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// Desired elements per managed set (every managed set is present, possibly empty).
pub type Desired = BTreeMap<SetId, BTreeSet<Elem>>;

/// nftables address family of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Inet,
    Ip,
    Ip6,
    Bridge,
    Netdev,
    Arp,
}

impl Family {
    /// `NFPROTO_*`, as nf_tables messages carry it.
    pub fn number(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Arp => 3,
            Family::Netdev => 5,
            Family::Bridge => 7,
            Family::Ip6 => 10,
        }
    }

    pub fn from_number(n: u8) -> Option<Family> {
        [Family::Inet, Family::Ip, Family::Arp, Family::Netdev, Family::Bridge, Family::Ip6]
            .into_iter()
            .find(|f| f.number() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
            Family::Arp => "arp",
        }
    }

    fn parse(s: &str) -> Option<Family> {
        Some(match s {
            "inet" => Family::Inet,
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "bridge" => Family::Bridge,
            "netdev" => Family::Netdev,
            "arp" => Family::Arp,
            _ => return None,
        })
    }
}

/// A table named as nft names it: `inet filter` (a bare `filter` means `inet filter`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    pub family: Family,
    pub name: String,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family.name(), self.name)
    }
}

impl TableRef {
    pub fn parse(s: &str) -> Result<TableRef, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let (family, name) = match words.as_slice() {
            [name] => (Family::Inet, *name),
            [fam, name] => (
                Family::parse(fam).ok_or_else(|| {
                    format!("unknown table family `{fam}` (expected inet, ip, ip6, bridge, netdev or arp)")
                })?,
                *name,
            ),
            _ => return Err(format!("`{s}` is not a table (expected e.g. `inet filter`)")),
        };
        check_nft_name(name)?;
        Ok(TableRef { family, name: name.to_string() })
    }
}

/// nft identifiers: a letter, then letters, digits, `_`, `-`, `.`; at most 255 bytes.
pub fn check_nft_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok && name.len() <= 255 {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid nftables name (a letter, then letters, digits, _ - .)"))
    }
}

/// The key type a managed set must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// `type ipv4_addr`: single addresses.
    Ipv4Addr,
    /// `type ipv6_addr`: single addresses.
    Ipv6Addr,
    /// `type ipv4_addr; flags interval`: prefixes.
    Ipv4Net,
    /// `type ipv6_addr; flags interval`: prefixes.
    Ipv6Net,
    /// Owned map `inet_proto . inet_service : ipv4_addr . inet_service` (published ports).
    Publish4,
    /// Owned map `inet_proto . inet_service : ipv6_addr . inet_service`.
    Publish6,
    /// Owned map `ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service` (ports
    /// bound to one host address).
    PublishBound4,
    /// Owned map `ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service`.
    PublishBound6,
    /// Owned map `ifname . inet_proto . inet_service : ipv4_addr . inet_service`
    /// (`nat.dnat` entries for single ports).
    Forward4,
    /// Owned map `ifname . inet_proto . inet_service : ipv6_addr . inet_service`.
    Forward6,
    /// Owned set `ipv4_addr . ipv4_addr` (hairpin: source . destination after DNAT).
    Pair4,
    /// Owned set `ipv6_addr . ipv6_addr`.
    Pair6,
    /// `typeof socket cgroupv2 level N`: cgroup ids (8 bytes, host order).
    Cgroup,
}

impl SetKind {
    pub fn is_interval(self) -> bool {
        matches!(self, SetKind::Ipv4Net | SetKind::Ipv6Net)
    }

    pub fn family(self) -> IpFamily {
        if self.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }

    pub fn is_ipv4(self) -> bool {
        matches!(
            self,
            SetKind::Ipv4Addr
                | SetKind::Ipv4Net
                | SetKind::Publish4
                | SetKind::PublishBound4
                | SetKind::Forward4
                | SetKind::Pair4
        )
    }

    /// Key and data length in bytes, as the kernel stores them (concatenated fields are
    /// padded to 4 bytes each).
    pub fn key_len(self) -> u32 {
        match self {
            SetKind::Ipv4Addr | SetKind::Ipv4Net => 4,
            SetKind::Ipv6Addr | SetKind::Ipv6Net => 16,
            SetKind::Publish4 | SetKind::Publish6 | SetKind::Pair4 | SetKind::Cgroup => 8,
            SetKind::PublishBound4 => 12,
            SetKind::PublishBound6 | SetKind::Forward4 | SetKind::Forward6 => 24,
            SetKind::Pair6 => 32,
        }
    }

    /// `(data type, data length)` for maps.
    pub fn data(self) -> Option<(u32, u32)> {
        match self {
            SetKind::Publish4 | SetKind::PublishBound4 | SetKind::Forward4 => {
                Some((TYPE_IPV4 << 6 | TYPE_SERVICE, 8))
            }
            SetKind::Publish6 | SetKind::PublishBound6 | SetKind::Forward6 => {
                Some((TYPE_IPV6 << 6 | TYPE_SERVICE, 20))
            }
            _ => None,
        }
    }

    /// nft's key type number (concatenations: 6 bits per field).
    pub fn key_type(self) -> u32 {
        match self {
            SetKind::Ipv4Addr | SetKind::Ipv4Net => TYPE_IPV4,
            SetKind::Ipv6Addr | SetKind::Ipv6Net => TYPE_IPV6,
            SetKind::Publish4 | SetKind::Publish6 => TYPE_PROTO << 6 | TYPE_SERVICE,
            SetKind::PublishBound4 => (TYPE_IPV4 << 6 | TYPE_PROTO) << 6 | TYPE_SERVICE,
            SetKind::PublishBound6 => (TYPE_IPV6 << 6 | TYPE_PROTO) << 6 | TYPE_SERVICE,
            SetKind::Forward4 | SetKind::Forward6 => (TYPE_IFNAME << 6 | TYPE_PROTO) << 6 | TYPE_SERVICE,
            SetKind::Pair4 => TYPE_IPV4 << 6 | TYPE_IPV4,
            SetKind::Pair6 => TYPE_IPV6 << 6 | TYPE_IPV6,
            SetKind::Cgroup => TYPE_CGROUPV2,
        }
    }

    /// How nft writes the set's declaration, for error messages and docs.
    pub fn declaration(self) -> &'static str {
        match self {
            SetKind::Ipv4Addr => "type ipv4_addr",
            SetKind::Ipv6Addr => "type ipv6_addr",
            SetKind::Ipv4Net => "type ipv4_addr; flags interval",
            SetKind::Ipv6Net => "type ipv6_addr; flags interval",
            SetKind::Publish4 => "type inet_proto . inet_service : ipv4_addr . inet_service",
            SetKind::Publish6 => "type inet_proto . inet_service : ipv6_addr . inet_service",
            SetKind::PublishBound4 => "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
            SetKind::PublishBound6 => "type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service",
            SetKind::Forward4 => "type ifname . inet_proto . inet_service : ipv4_addr . inet_service",
            SetKind::Forward6 => "type ifname . inet_proto . inet_service : ipv6_addr . inet_service",
            SetKind::Pair4 => "type ipv4_addr . ipv4_addr",
            SetKind::Pair6 => "type ipv6_addr . ipv6_addr",
            SetKind::Cgroup => "typeof socket cgroupv2 level N",
        }
    }
}

const TYPE_IPV4: u32 = 7;
const TYPE_IPV6: u32 = 8;
const TYPE_PROTO: u32 = 12;
const TYPE_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
const TYPE_CGROUPV2: u32 = 46;

/// An interface name as the kernel compares it: 16 bytes, NUL padded.
pub type IfName = [u8; 16];

/// `None` when the name does not fit (15 bytes at most).
pub fn ifname(name: &str) -> Option<IfName> {
    let b = name.as_bytes();
    (b.len() < 16).then(|| {
        let mut out = [0u8; 16];
        out[..b.len()].copy_from_slice(b);
        out
    })
}

/// One managed set in the admin's ruleset.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetId {
    pub table: TableRef,
    pub name: String,
    pub kind: SetKind,
}

impl fmt::Display for SetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.table, self.name)
    }
}

/// A set element: an address, or for interval sets a range `[start, end)` where `end: None`
/// means "to the top of the address space" (nft stores no end element then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Elem {
    Addr(IpAddr),
    Range {
        start: IpAddr,
        end: Option<IpAddr>,
    },
    /// A published port: `[host .] proto . port : to . to_port` (`host` only for bound maps).
    Mapping {
        host: Option<IpAddr>,
        proto: L4Proto,
        port: u16,
        to: IpAddr,
        to_port: u16,
    },
    /// A cgroup v2 id (the inode number of its directory).
    Cgroup(u64),
    /// Two addresses (hairpin set): `a . b`.
    Pair(IpAddr, IpAddr),
    /// A port forward: `"iface" . proto . port : to . to_port`.
    PortForward {
        iface: IfName,
        proto: L4Proto,
        port: u16,
        to: IpAddr,
        to_port: u16,
    },
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Addr(a) => write!(f, "{a}"),
            Elem::Mapping { host, proto, port, to, to_port } => {
                if let Some(h) = host {
                    write!(f, "{h} . ")?;
                }
                write!(f, "{proto} . {port} : {to} . {to_port}")
            }
            Elem::Pair(a, b) => write!(f, "{a} . {b}"),
            Elem::Cgroup(id) => write!(f, "{id}"),
            Elem::PortForward { iface, proto, port, to, to_port } => {
                let end = iface.iter().position(|b| *b == 0).unwrap_or(iface.len());
                let name = String::from_utf8_lossy(&iface[..end]);
                write!(f, "\"{name}\" . {proto} . {port} : {to} . {to_port}")
            }
            Elem::Range { start, end } => match range_as_prefix(*start, *end) {
                Some(len) => write!(f, "{start}/{len}"),
                None => match end {
                    Some(e) => write!(f, "{start}-{}", before(*e)),
                    None if start.is_ipv4() => write!(f, "{start}-255.255.255.255"),
                    None => write!(f, "{start}-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                },
            },
        }
    }
}

fn to_u128(a: IpAddr) -> (u128, u32) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn before(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4(u32::from(v).wrapping_sub(1).into()),
        IpAddr::V6(v) => IpAddr::V6(u128::from(v).wrapping_sub(1).into()),
    }
}

/// The prefix length when `[start, end)` is exactly one prefix.
fn range_as_prefix(start: IpAddr, end: Option<IpAddr>) -> Option<u32> {
    let (s, bits) = to_u128(start);
    let size = match end {
        Some(e) => to_u128(e).0.checked_sub(s)?,
        None => {
            let top = if bits == 32 { 1u128 << 32 } else { 0 };
            top.wrapping_sub(s)
        }
    };
    if size == 0 && end.is_none() && s == 0 && bits == 128 {
        return Some(0); // ::/0
    }
    if size == 0 || !size.is_power_of_two() || s % size != 0 {
        return None;
    }
    Some(bits - size.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let a: IpAddr = "192.0.2.0".parse().unwrap();
        let e: IpAddr = "192.0.3.0".parse().unwrap();
        assert_eq!(Elem::Range { start: a, end: Some(e) }.to_string(), "192.0.2.0/24");
        let odd: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(Elem::Range { start: odd, end: Some(e) }.to_string(), "192.0.2.10-192.0.2.255");
        let top: IpAddr = "255.255.255.0".parse().unwrap();
        assert_eq!(Elem::Range { start: top, end: None }.to_string(), "255.255.255.0/24");
        let zero6: IpAddr = "::".parse().unwrap();
        assert_eq!(Elem::Range { start: zero6, end: None }.to_string(), "::/0");
        assert_eq!(Elem::Addr(a).to_string(), "192.0.2.0");
    }
}
