//! Element lists as libnftnl objects, written into a batch as NEWSETELEM/DELSETELEM messages.

use super::family_number;
use crate::elements::{Elem, SetId};
use nftnl::nftnl_sys as sys;
use nftnl::{MsgType, NlMsg};
use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::net::IpAddr;
use std::os::raw::c_char;
use std::ptr::NonNull;

const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

/// A libnftnl set object carrying only table, name and the elements to add or delete.
pub struct ElemList {
    set: NonNull<sys::nftnl_set>,
    iter: NonNull<sys::nftnl_set_elems_iter>,
    family: u16,
    /// What the last `write` returned: > 0 while elements remain.
    more: Cell<i32>,
}

pub(super) fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// One kernel element: key, data (maps), flags.
pub struct RawElem {
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
    pub flags: u32,
}

/// A field of a concatenation takes a multiple of 4 bytes.
fn pad4(mut v: Vec<u8>) -> Vec<u8> {
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// How an element is laid out in the kernel (the inverse is `decode` in socket.rs).
pub fn encode(e: &Elem) -> Vec<RawElem> {
    let plain = |key| RawElem { key, data: None, flags: 0 };
    match *e {
        Elem::Addr(a) => vec![plain(addr_bytes(a))],
        Elem::Range { start, end } => {
            let mut v = vec![plain(addr_bytes(start))];
            if let Some(end) = end {
                v.push(RawElem { key: addr_bytes(end), data: None, flags: NFT_SET_ELEM_INTERVAL_END });
            }
            v
        }
        Elem::Mapping { host, proto, port, to, to_port } => {
            let mut key = host.map(addr_bytes).unwrap_or_default();
            key.extend(pad4(vec![proto.number()]));
            key.extend(pad4(port.to_be_bytes().to_vec()));
            let mut data = addr_bytes(to);
            data.extend(pad4(to_port.to_be_bytes().to_vec()));
            vec![RawElem { key, data: Some(data), flags: 0 }]
        }
        Elem::Cgroup(id) => vec![plain(id.to_ne_bytes().to_vec())],
        Elem::Pair(a, b) => {
            let mut key = addr_bytes(a);
            key.extend(addr_bytes(b));
            vec![plain(key)]
        }
        Elem::PortForward { iface, proto, port, to, to_port } => {
            let mut key = iface.to_vec();
            key.extend(pad4(vec![proto.number()]));
            key.extend(pad4(port.to_be_bytes().to_vec()));
            let mut data = addr_bytes(to);
            data.extend(pad4(to_port.to_be_bytes().to_vec()));
            vec![RawElem { key, data: Some(data), flags: 0 }]
        }
    }
}

impl ElemList {
    /// `None` only when libnftnl cannot allocate or a name holds a NUL byte.
    pub fn new(set: &SetId, elems: &[Elem]) -> Option<ElemList> {
        let table = CString::new(set.table.name.as_str()).ok()?;
        let name = CString::new(set.name.as_str()).ok()?;
        let family = family_number(set.table.family);
        // SAFETY: every pointer passed is either freshly allocated by libnftnl and checked for
        // NULL, or a live CString; element keys are copied by nftnl_set_elem_set.
        unsafe {
            let s = NonNull::new(sys::nftnl_set_alloc())?;
            sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_FAMILY as u16, u32::from(family));
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
            let add = |raw: &RawElem| -> Option<()> {
                let e = NonNull::new(sys::nftnl_set_elem_alloc())?;
                sys::nftnl_set_elem_set(
                    e.as_ptr(),
                    sys::NFTNL_SET_ELEM_KEY as u16,
                    raw.key.as_ptr() as *const c_void,
                    raw.key.len() as u32,
                );
                if let Some(data) = &raw.data {
                    sys::nftnl_set_elem_set(
                        e.as_ptr(),
                        sys::NFTNL_SET_ELEM_DATA as u16,
                        data.as_ptr() as *const c_void,
                        data.len() as u32,
                    );
                }
                if raw.flags != 0 {
                    sys::nftnl_set_elem_set_u32(e.as_ptr(), sys::NFTNL_SET_ELEM_FLAGS as u16, raw.flags);
                }
                sys::nftnl_set_elem_add(s.as_ptr(), e.as_ptr());
                Some(())
            };
            let mut ok = true;
            for raw in elems.iter().flat_map(encode) {
                ok &= add(&raw).is_some();
            }
            let iter = NonNull::new(sys::nftnl_set_elems_iter_create(s.as_ptr()));
            match (ok, iter) {
                (true, Some(iter)) => Some(ElemList { set: s, iter, family, more: Cell::new(1) }),
                (_, iter) => {
                    if let Some(i) = iter {
                        sys::nftnl_set_elems_iter_destroy(i.as_ptr());
                    }
                    sys::nftnl_set_free(s.as_ptr());
                    None
                }
            }
        }
    }

    /// True while elements remain to be written into messages.
    pub fn has_more(&self) -> bool {
        // SAFETY: the iterator is owned by self and alive.
        self.more.get() > 0 && unsafe { !sys::nftnl_set_elems_iter_cur(self.iter.as_ptr()).is_null() }
    }
}

impl Drop for ElemList {
    fn drop(&mut self) {
        // SAFETY: both objects were created in `new` and are freed exactly once here.
        unsafe {
            sys::nftnl_set_elems_iter_destroy(self.iter.as_ptr());
            sys::nftnl_set_free(self.set.as_ptr());
        }
    }
}

// SAFETY: `write` builds exactly one netlink message into `buf`, which the batch sized to
// hold nft_nlmsg_maxsize() bytes; libnftnl stops filling a message before it overflows.
unsafe impl NlMsg for ElemList {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let (ty, flags) = match msg_type {
            MsgType::Add => (NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE | libc::NLM_F_EXCL | libc::NLM_F_ACK),
            MsgType::Del => (NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        // SAFETY: see the impl comment; the iterator continues where the last message ended.
        unsafe {
            let hdr = sys::nftnl_nlmsg_build_hdr(buf as *mut c_char, ty, self.family, flags as u16, seq);
            self.more.set(sys::nftnl_set_elems_nlmsg_build_payload_iter(hdr, self.iter.as_ptr()));
        }
    }
}
