//! The vocabulary of managed sets: which set (`SetId`), what kind of key, and element values.

use crate::config::TableRef;
use std::fmt;
use std::net::IpAddr;

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
}

impl SetKind {
    pub fn is_interval(self) -> bool {
        matches!(self, SetKind::Ipv4Net | SetKind::Ipv6Net)
    }

    pub fn is_ipv4(self) -> bool {
        matches!(self, SetKind::Ipv4Addr | SetKind::Ipv4Net)
    }

    /// How nft writes the set's declaration, for error messages and docs.
    pub fn declaration(self) -> &'static str {
        match self {
            SetKind::Ipv4Addr => "type ipv4_addr",
            SetKind::Ipv6Addr => "type ipv6_addr",
            SetKind::Ipv4Net => "type ipv4_addr; flags interval",
            SetKind::Ipv6Net => "type ipv6_addr; flags interval",
        }
    }
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
    Range { start: IpAddr, end: Option<IpAddr> },
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Addr(a) => write!(f, "{a}"),
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
