//! nftables expressions as libnftnl objects, for the rules of the owned table. The nftnl
//! crate's own expressions always load into register 1 and have no map lookups, which
//! concatenated DNAT maps need; these mirror what `nft --debug=netlink` shows nft emit.

use crate::inet::IpFamily;
use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use nftnl::Rule;
use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;

/// 16-byte registers 1 and 2; 32-bit registers start at 8 (`NFT_REG32_00`) and overlay them.
pub const REG1: u32 = 1;
pub const REG2: u32 = 2;
pub const fn reg32(n: u32) -> u32 {
    8 + n
}

enum Attr {
    U32(u32, u32),
    Str(u32, CString),
    Data(u32, Vec<u8>),
}

pub struct Expr {
    name: &'static CStr,
    attrs: Vec<Attr>,
}

impl Expr {
    fn new(name: &'static CStr) -> Expr {
        Expr { name, attrs: Vec::new() }
    }

    fn u32(mut self, attr: u32, v: u32) -> Expr {
        self.attrs.push(Attr::U32(attr, v));
        self
    }

    fn data(mut self, attr: u32, v: &[u8]) -> Expr {
        self.attrs.push(Attr::Data(attr, v.to_vec()));
        self
    }

    fn string(mut self, attr: u32, v: &str) -> Expr {
        // Set names are validated nft identifiers: no NUL bytes.
        self.attrs.push(Attr::Str(attr, CString::new(v).unwrap_or_default()));
        self
    }
}

impl Expression for Expr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: the expression is freshly allocated (NULL aborts like nftnl's own
        // expressions do); data and strings are copied by libnftnl before this returns.
        unsafe {
            let Some(e) = NonNull::new(sys::nftnl_expr_alloc(self.name.as_ptr())) else {
                std::process::abort();
            };
            for a in &self.attrs {
                match a {
                    Attr::U32(k, v) => sys::nftnl_expr_set_u32(e.as_ptr(), *k as u16, *v),
                    Attr::Str(k, v) => {
                        sys::nftnl_expr_set_str(e.as_ptr(), *k as u16, v.as_ptr());
                    }
                    Attr::Data(k, v) => {
                        sys::nftnl_expr_set(
                            e.as_ptr(),
                            *k as u16,
                            v.as_ptr() as *const c_void,
                            v.len() as u32,
                        );
                    }
                }
            }
            e
        }
    }
}

pub const META_NFPROTO: u32 = 15;
pub const META_L4PROTO: u32 = 16;
pub const PAYLOAD_NETWORK: u32 = 1;
pub const PAYLOAD_TRANSPORT: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const FIB_F_DADDR: u32 = 1 << 1;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const CT_ESTABLISHED: u32 = 0x2;
const CT_RELATED: u32 = 0x4;
const NAT_SNAT: u32 = 0;
const NF_DROP: u32 = 0;
pub const META_MARK: u32 = 3;
pub const META_IIFNAME: u32 = 6;
pub const META_OIFNAME: u32 = 7;
const IPS_DST_NAT: u32 = 0x20;
const NAT_DNAT: u32 = 1;
const NF_ACCEPT: u32 = 1;

pub fn meta(key: u32, dreg: u32) -> Expr {
    Expr::new(c"meta").u32(sys::NFTNL_EXPR_META_KEY, key).u32(sys::NFTNL_EXPR_META_DREG, dreg)
}

pub fn payload(base: u32, offset: u32, len: u32, dreg: u32) -> Expr {
    Expr::new(c"payload")
        .u32(sys::NFTNL_EXPR_PAYLOAD_BASE, base)
        .u32(sys::NFTNL_EXPR_PAYLOAD_OFFSET, offset)
        .u32(sys::NFTNL_EXPR_PAYLOAD_LEN, len)
        .u32(sys::NFTNL_EXPR_PAYLOAD_DREG, dreg)
}

pub fn cmp_eq(sreg: u32, data: &[u8]) -> Expr {
    cmp(sreg, CMP_EQ, data)
}

pub const CMP_LTE: u32 = 3;
pub const CMP_GTE: u32 = 5;

pub fn cmp(sreg: u32, op: u32, data: &[u8]) -> Expr {
    Expr::new(c"cmp")
        .u32(sys::NFTNL_EXPR_CMP_SREG, sreg)
        .u32(sys::NFTNL_EXPR_CMP_OP, op)
        .data(sys::NFTNL_EXPR_CMP_DATA, data)
}

pub fn cmp_neq(sreg: u32, data: &[u8]) -> Expr {
    cmp(sreg, CMP_NEQ, data)
}

/// `reg = (reg & mask) ^ xor` over `mask.len()` bytes.
pub fn bitwise(reg: u32, mask: &[u8], xor: &[u8]) -> Expr {
    Expr::new(c"bitwise")
        .u32(sys::NFTNL_EXPR_BITWISE_SREG, reg)
        .u32(sys::NFTNL_EXPR_BITWISE_DREG, reg)
        .u32(sys::NFTNL_EXPR_BITWISE_LEN, mask.len() as u32)
        .data(sys::NFTNL_EXPR_BITWISE_MASK, mask)
        .data(sys::NFTNL_EXPR_BITWISE_XOR, xor)
}

pub fn meta_set(key: u32, sreg: u32) -> Expr {
    Expr::new(c"meta").u32(sys::NFTNL_EXPR_META_KEY, key).u32(sys::NFTNL_EXPR_META_SREG, sreg)
}

pub fn immediate(dreg: u32, data: &[u8]) -> Expr {
    Expr::new(c"immediate").u32(sys::NFTNL_EXPR_IMM_DREG, dreg).data(sys::NFTNL_EXPR_IMM_DATA, data)
}

/// `ct state established,related`.
pub fn ct_established() -> [Expr; 3] {
    [
        Expr::new(c"ct").u32(sys::NFTNL_EXPR_CT_KEY, CT_STATE).u32(sys::NFTNL_EXPR_CT_DREG, REG1),
        bitwise(REG1, &(CT_ESTABLISHED | CT_RELATED).to_ne_bytes(), &0u32.to_ne_bytes()),
        cmp_neq(REG1, &0u32.to_ne_bytes()),
    ]
}

/// Which address a `nat` expression rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    Snat,
    Dnat,
}

/// `nat snat|dnat` with the address in `addr_reg` and optionally the port in `port_reg`.
pub fn nat(kind: NatKind, family: IpFamily, addr_reg: u32, port_reg: Option<u32>) -> Expr {
    let nat_type = match kind {
        NatKind::Dnat => NAT_DNAT,
        NatKind::Snat => NAT_SNAT,
    };
    let e = Expr::new(c"nat")
        .u32(sys::NFTNL_EXPR_NAT_TYPE, nat_type)
        .u32(sys::NFTNL_EXPR_NAT_FAMILY, u32::from(family.nfproto()))
        .u32(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, addr_reg);
    match port_reg {
        Some(r) => e.u32(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, r),
        None => e,
    }
}

pub fn drop_verdict() -> Expr {
    Expr::new(c"immediate").u32(sys::NFTNL_EXPR_IMM_DREG, 0).u32(sys::NFTNL_EXPR_IMM_VERDICT, NF_DROP)
}

/// `fib daddr type local`.
pub fn fib_daddr_is_local() -> [Expr; 2] {
    [
        Expr::new(c"fib")
            .u32(sys::NFTNL_EXPR_FIB_FLAGS, FIB_F_DADDR)
            .u32(sys::NFTNL_EXPR_FIB_RESULT, FIB_RESULT_ADDRTYPE)
            .u32(sys::NFTNL_EXPR_FIB_DREG, REG1),
        cmp_eq(REG1, &RTN_LOCAL.to_ne_bytes()),
    ]
}

/// `meta nfproto ipv4|ipv6`.
pub fn nfproto_is(family: IpFamily) -> [Expr; 2] {
    [meta(META_NFPROTO, REG1), cmp_eq(REG1, &[family.nfproto()])]
}

/// `ct status dnat`.
pub fn ct_status_dnat() -> [Expr; 3] {
    [
        Expr::new(c"ct").u32(sys::NFTNL_EXPR_CT_KEY, CT_STATUS).u32(sys::NFTNL_EXPR_CT_DREG, REG1),
        Expr::new(c"bitwise")
            .u32(sys::NFTNL_EXPR_BITWISE_SREG, REG1)
            .u32(sys::NFTNL_EXPR_BITWISE_DREG, REG1)
            .u32(sys::NFTNL_EXPR_BITWISE_LEN, 4)
            .data(sys::NFTNL_EXPR_BITWISE_MASK, &IPS_DST_NAT.to_ne_bytes())
            .data(sys::NFTNL_EXPR_BITWISE_XOR, &0u32.to_ne_bytes()),
        Expr::new(c"cmp")
            .u32(sys::NFTNL_EXPR_CMP_SREG, REG1)
            .u32(sys::NFTNL_EXPR_CMP_OP, CMP_NEQ)
            .data(sys::NFTNL_EXPR_CMP_DATA, &0u32.to_ne_bytes()),
    ]
}

/// A set lookup from `sreg`; with `dreg` a map lookup writing the value there.
pub fn lookup(set: &str, sreg: u32, dreg: Option<u32>) -> Expr {
    let e =
        Expr::new(c"lookup").string(sys::NFTNL_EXPR_LOOKUP_SET, set).u32(sys::NFTNL_EXPR_LOOKUP_SREG, sreg);
    match dreg {
        Some(d) => e.u32(sys::NFTNL_EXPR_LOOKUP_DREG, d),
        None => e,
    }
}

pub fn masquerade() -> Expr {
    Expr::new(c"masq")
}

pub fn accept() -> Expr {
    Expr::new(c"immediate").u32(sys::NFTNL_EXPR_IMM_DREG, 0).u32(sys::NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT)
}
