//! Internet vocabulary shared by the config, the wire parsers and nftables: IP family and
//! layer-4 protocol, each with its one number/name mapping.

use std::fmt;
use std::net::IpAddr;

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(addr: &IpAddr) -> IpFamily {
        if addr.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }

    /// nft's payload keyword: `ip` or `ip6`.
    pub fn nft_keyword(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    /// `meta nfproto` value name: `ipv4` or `ipv6`.
    pub fn nfproto_name(self) -> &'static str {
        match self {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        }
    }

    /// `NFPROTO_IPV4` / `NFPROTO_IPV6`.
    pub fn nfproto(self) -> u8 {
        match self {
            IpFamily::V4 => 2,
            IpFamily::V6 => 10,
        }
    }

    /// Address length in bytes.
    pub fn addr_len(self) -> u32 {
        match self {
            IpFamily::V4 => 4,
            IpFamily::V6 => 16,
        }
    }

    /// `4` or `6`, for names such as `dnat4`.
    pub fn digit(self) -> char {
        match self {
            IpFamily::V4 => '4',
            IpFamily::V6 => '6',
        }
    }
}

/// A layer-4 protocol netmgrd forwards: the one place its names and numbers are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    pub fn parse(s: &str) -> Option<L4Proto> {
        match s {
            "tcp" => Some(L4Proto::Tcp),
            "udp" => Some(L4Proto::Udp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }

    /// The IP protocol number (`IPPROTO_TCP`, `IPPROTO_UDP`).
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }

    pub fn from_number(n: u8) -> Option<L4Proto> {
        match n {
            6 => Some(L4Proto::Tcp),
            17 => Some(L4Proto::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for L4Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_both_ways() {
        for p in [L4Proto::Tcp, L4Proto::Udp] {
            assert_eq!(L4Proto::from_number(p.number()), Some(p));
            assert_eq!(L4Proto::parse(p.name()), Some(p));
        }
        assert_eq!(L4Proto::from_number(1), None);
        assert_eq!(IpFamily::of(&"2001:db8::1".parse().unwrap()), IpFamily::V6);
    }
}
