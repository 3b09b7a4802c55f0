//! `IpPrefix`: an address with a prefix length (`192.0.2.1/24`), as interfaces carry them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address plus prefix length. The address keeps its host bits (it is an interface
/// address, not only a network); `network()` masks them off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    /// Builds a prefix, rejecting lengths longer than the family allows.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= max_len(&addr)).then_some(IpPrefix { addr, len })
    }

    /// The network address: host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    /// First address after the network (exclusive end), `None` when the prefix reaches the
    /// top of the address space.
    pub fn end_exclusive(&self) -> Option<IpAddr> {
        match self.network() {
            IpAddr::V4(n) => {
                let size = 1u64 << (32 - u32::from(self.len));
                let end = u64::from(u32::from(n)) + size;
                u32::try_from(end).ok().map(|e| IpAddr::V4(Ipv4Addr::from(e)))
            }
            IpAddr::V6(n) => {
                let size = 1u128.checked_shl(128 - u32::from(self.len));
                match size {
                    Some(s) => u128::from(n).checked_add(s).map(|e| IpAddr::V6(Ipv6Addr::from(e))),
                    None => None, // /0
                }
            }
        }
    }

    /// True when the address lies inside this prefix.
    pub fn contains_addr(&self, a: IpAddr) -> bool {
        IpPrefix::new(a, max_len(&a)).is_some_and(|host| self.contains(&host))
    }

    /// True when the two prefixes share an address.
    pub fn overlaps(&self, other: &IpPrefix) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// True when `other` lies inside this prefix.
    pub fn contains(&self, other: &IpPrefix) -> bool {
        other.len >= self.len
            && IpPrefix { addr: other.addr, len: self.len }.network() == self.network()
            && other.addr.is_ipv4() == self.addr.is_ipv4()
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;

    /// Accepts `ADDR/LEN` or a bare `ADDR` (a host prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr =
            addr_text.trim().parse().map_err(|_| format!("`{s}` is not an IP address or prefix"))?;
        let len = match len_text {
            Some(l) => l.trim().parse::<u8>().map_err(|_| format!("`{s}` has an invalid prefix length"))?,
            None => max_len(&addr),
        };
        IpPrefix::new(addr, len)
            .ok_or_else(|| format!("`{s}`: prefix length {len} is too long for this family"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_masks() {
        let p: IpPrefix = "192.0.2.77/24".parse().unwrap();
        assert_eq!(p.network().to_string(), "192.0.2.0");
        assert_eq!(p.end_exclusive().unwrap().to_string(), "192.0.3.0");
        let p: IpPrefix = "2001:db8::5/64".parse().unwrap();
        assert_eq!(p.network().to_string(), "2001:db8::");
        assert_eq!(p.end_exclusive().unwrap().to_string(), "2001:db8:0:1::");
    }

    #[test]
    fn top_of_space_has_no_end() {
        let p: IpPrefix = "255.255.255.0/24".parse().unwrap();
        assert_eq!(p.end_exclusive(), None);
        let p: IpPrefix = "::/0".parse().unwrap();
        assert_eq!(p.end_exclusive(), None);
        let p: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert_eq!(p.end_exclusive(), None);
    }

    #[test]
    fn rejects_bad_input() {
        assert!("192.0.2.1/33".parse::<IpPrefix>().is_err());
        assert!("192.0.2/24".parse::<IpPrefix>().is_err());
        assert!("2001:db8::/129".parse::<IpPrefix>().is_err());
        assert!("x/1".parse::<IpPrefix>().is_err());
    }

    #[test]
    fn containment() {
        let a: IpPrefix = "192.0.2.0/24".parse().unwrap();
        let b: IpPrefix = "192.0.2.128/25".parse().unwrap();
        assert!(a.contains(&b));
        assert!(!b.contains(&a));
    }
}
