//! The long-lived `NETLINK_NETFILTER` socket: read a managed set, apply element batches.

use super::elems::{ElemList, RawElem};
use super::{family_number, NftError};
use crate::diff::SetChange;
use crate::elements::{Elem, SetId, SetKind};
use crate::inet::L4Proto;
use crate::sys::fd;
use crate::wire::netlink::{self, NLMSG_DONE, NLMSG_ERROR};
use nftnl::nftnl_sys as sys;
use nftnl::{Batch, MsgType};
use std::collections::BTreeSet;
use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::raw::c_char;
use std::os::unix::io::RawFd;
use std::ptr::NonNull;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
/// Receive buffer: ACKs of a large batch and a dump part must fit.
const RCVBUF_BYTES: i32 = 4 << 20;

pub struct Nft {
    sock: mnl::Socket,
    fd: RawFd,
    portid: u32,
    seq: u32,
    /// u32-backed so libnftnl's parsers see aligned `nlmsghdr`s.
    buf: Vec<u32>,
    sndbuf: usize,
    /// Batches sent (successful or not): the benchmark counts transactions with it.
    pub batches_sent: u64,
}

/// What one message of a batch did, to name the object when the kernel refuses it.
pub struct MsgInfo {
    pub set: String,
    pub op: &'static str,
}

impl Nft {
    pub fn open() -> Result<Nft, NftError> {
        let sock = mnl::Socket::new(mnl::Bus::Netfilter)
            .map_err(|error| NftError::Socket { step: "open NETLINK_NETFILTER", error })?;
        // SAFETY: the mnl socket is alive for as long as `sock`, which owns the fd.
        let fd = unsafe { mnl::mnl_sys::mnl_socket_get_fd(sock.as_raw_socket()) };
        let portid = sock.portid();
        // Errors name only the request's header (not its whole body) and carry the kernel's
        // explanation text.
        let _ = fd::set_sockopt_int(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = fd::set_sockopt_int(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
        fd::grow_rcvbuf(fd, RCVBUF_BYTES).map_err(|error| NftError::Socket { step: "SO_RCVBUF", error })?;
        // A dump must never stall the loop: a reply that does not come within a second is an error.
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: passes a live timeval with its exact size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        let sndbuf = fd::get_sockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap_or(212992) as usize;
        Ok(Nft { sock, fd, portid, seq: 1 << 16, buf: vec![0u32; 64 * 1024], sndbuf, batches_sent: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1 << 16);
        self.seq
    }

    /// Reads a managed set: checks that its key fits `set.kind`, returns its elements.
    pub fn read_set(&mut self, set: &SetId) -> Result<BTreeSet<Elem>, NftError> {
        let shown = set.to_string();
        let (key_len, flags) = self.get_set_type(set)?;
        let want_len = set.kind.key_len();
        let interval = flags & NFT_SET_INTERVAL != 0;
        if key_len != want_len || interval != set.kind.is_interval() {
            return Err(NftError::WrongType {
                set: shown,
                expected: set.kind.declaration(),
                found: format!(
                    "a set with {key_len}-byte keys{}",
                    if interval { " and flags interval" } else { "" }
                ),
            });
        }
        let raw = self.dump_elements(set)?;
        Ok(decode(set.kind, raw))
    }

    /// Sends one request built by `build` and collects the replies of type `reply_type`
    /// (nf_tables message number) until an ACK, `NLMSG_DONE` or an error.
    fn request(
        &mut self,
        set: &SetId,
        msg: u16,
        flags: u16,
        reply_type: u16,
        step: &'static str,
        mut each: impl FnMut(*const libc::nlmsghdr),
    ) -> Result<(), NftError> {
        let shown = set.to_string();
        let table =
            CString::new(set.table.name.as_str()).map_err(|_| NftError::Missing { set: shown.clone() })?;
        let name = CString::new(set.name.as_str()).map_err(|_| NftError::Missing { set: shown.clone() })?;
        let seq = self.next_seq();
        let mut req = vec![0u32; 1024];
        // SAFETY: `req` is 4 KiB, aligned, and far larger than a header plus two names;
        // the set object is allocated, used and freed within this block.
        let len = unsafe {
            let s = NonNull::new(sys::nftnl_set_alloc())
                .ok_or_else(|| NftError::NoAnswer { step, detail: "out of memory".into() })?;
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
            let hdr = sys::nftnl_nlmsg_build_hdr(
                req.as_mut_ptr() as *mut c_char,
                msg,
                family_number(set.table.family),
                flags,
                seq,
            );
            if msg == NFT_MSG_GETTABLE {
                if let Some(t) = NonNull::new(sys::nftnl_table_alloc()) {
                    sys::nftnl_table_set_str(t.as_ptr(), sys::NFTNL_TABLE_NAME as u16, table.as_ptr());
                    sys::nftnl_table_nlmsg_build_payload(hdr, t.as_ptr());
                    sys::nftnl_table_free(t.as_ptr());
                }
            } else if msg == NFT_MSG_GETSET {
                sys::nftnl_set_nlmsg_build_payload(hdr, s.as_ptr());
            } else {
                sys::nftnl_set_elems_nlmsg_build_payload(hdr, s.as_ptr());
            }
            sys::nftnl_set_free(s.as_ptr());
            (*hdr).nlmsg_len as usize
        };
        // SAFETY: viewing the initialised prefix of a u32 buffer as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(req.as_ptr() as *const u8, len) };
        self.drain_stale();
        self.sock.send(bytes).map_err(|e| NftError::NoAnswer { step, detail: e.to_string() })?;
        loop {
            let n = self.recv_blocking(step)?;
            // SAFETY: viewing the received prefix of the u32 buffer as bytes.
            let data = unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const u8, n) };
            for m in netlink::split(data) {
                let m = m.map_err(|at| NftError::NoAnswer {
                    step,
                    detail: format!("truncated reply at byte {at}"),
                })?;
                if m.seq != seq || (m.pid != self.portid && m.pid != 0) {
                    continue; // a late reply to an earlier request
                }
                match m.msg_type {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let ack = netlink::parse_ack(&m).ok_or_else(|| NftError::NoAnswer {
                            step,
                            detail: "short error message".into(),
                        })?;
                        return match ack.errno {
                            0 => Ok(()),
                            libc::ENOENT => Err(NftError::Missing { set: shown }),
                            errno => Err(NftError::Rejected {
                                set: Some(shown),
                                op: step,
                                errno,
                                message: ack.message,
                            }),
                        };
                    }
                    t if t & 0xff == reply_type => each(m.raw.as_ptr() as *const libc::nlmsghdr),
                    _ => {}
                }
            }
        }
    }

    /// Whether a table exists (NFT_MSG_GETTABLE).
    pub fn table_exists(&mut self, table: &crate::elements::TableRef) -> Result<bool, NftError> {
        let probe = SetId { table: table.clone(), name: String::new(), kind: SetKind::Ipv4Addr };
        let mut found = false;
        match self.request(
            &probe,
            NFT_MSG_GETTABLE,
            libc::NLM_F_ACK as u16,
            NFT_MSG_NEWTABLE,
            "read table",
            |_| {
                found = true;
            },
        ) {
            Ok(()) => Ok(found),
            Err(NftError::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A table's userdata (`None`: no such table; an empty vector: a table without userdata).
    pub fn table_userdata(&mut self, table: &crate::elements::TableRef) -> Result<Option<Vec<u8>>, NftError> {
        let probe = SetId { table: table.clone(), name: String::new(), kind: SetKind::Ipv4Addr };
        let mut found = None;
        let reply = self.request(
            &probe,
            NFT_MSG_GETTABLE,
            libc::NLM_F_ACK as u16,
            NFT_MSG_NEWTABLE,
            "read table",
            |hdr| {
                // SAFETY: `hdr` points at a complete, aligned NEWTABLE message in our buffer; the
                // userdata is copied before the table object is freed.
                unsafe {
                    let Some(t) = NonNull::new(sys::nftnl_table_alloc()) else { return };
                    let mut data = Vec::new();
                    if sys::nftnl_table_nlmsg_parse(hdr, t.as_ptr()) >= 0 {
                        let mut len = 0u32;
                        let p =
                            sys::nftnl_table_get_data(t.as_ptr(), sys::NFTNL_TABLE_USERDATA as u16, &mut len);
                        if !p.is_null() {
                            data = std::slice::from_raw_parts(p as *const u8, len as usize).to_vec();
                        }
                    }
                    sys::nftnl_table_free(t.as_ptr());
                    found = Some(data);
                }
            },
        );
        match reply {
            Ok(()) => Ok(found),
            Err(NftError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The declared `size` of a set, if it has one.
    pub fn set_size(&mut self, set: &SetId) -> Result<Option<u32>, NftError> {
        let mut size = None;
        self.request(set, NFT_MSG_GETSET, libc::NLM_F_ACK as u16, NFT_MSG_NEWSET, "read set", |hdr| {
            // SAFETY: `hdr` points at a complete, aligned NEWSET message in our buffer.
            unsafe {
                if let Some(s) = NonNull::new(sys::nftnl_set_alloc()) {
                    if sys::nftnl_set_nlmsg_parse(hdr, s.as_ptr()) >= 0
                        && sys::nftnl_set_is_set(s.as_ptr(), sys::NFTNL_SET_DESC_SIZE as u16)
                    {
                        size = Some(sys::nftnl_set_get_u32(s.as_ptr(), sys::NFTNL_SET_DESC_SIZE as u16));
                    }
                    sys::nftnl_set_free(s.as_ptr());
                }
            }
        })?;
        Ok(size)
    }

    /// Key length and set flags, from NFT_MSG_GETSET.
    fn get_set_type(&mut self, set: &SetId) -> Result<(u32, u32), NftError> {
        let mut found = None;
        self.request(set, NFT_MSG_GETSET, libc::NLM_F_ACK as u16, NFT_MSG_NEWSET, "read set", |hdr| {
            // SAFETY: `hdr` points at a complete, 4-byte aligned NEWSET message in our buffer.
            unsafe {
                if let Some(s) = NonNull::new(sys::nftnl_set_alloc()) {
                    if sys::nftnl_set_nlmsg_parse(hdr, s.as_ptr()) >= 0 {
                        found = Some((
                            sys::nftnl_set_get_u32(s.as_ptr(), sys::NFTNL_SET_KEY_LEN as u16),
                            if sys::nftnl_set_is_set(s.as_ptr(), sys::NFTNL_SET_FLAGS as u16) {
                                sys::nftnl_set_get_u32(s.as_ptr(), sys::NFTNL_SET_FLAGS as u16)
                            } else {
                                0
                            },
                        ));
                    }
                    sys::nftnl_set_free(s.as_ptr());
                }
            }
        })?;
        found.ok_or_else(|| NftError::NoAnswer {
            step: "read set",
            detail: "no set description in reply".into(),
        })
    }

    /// Every element key of a set with its flags, from an NFT_MSG_GETSETELEM dump.
    fn dump_elements(&mut self, set: &SetId) -> Result<Vec<RawElem>, NftError> {
        let mut out = Vec::new();
        let flags = (libc::NLM_F_DUMP | libc::NLM_F_ACK) as u16;
        self.request(set, NFT_MSG_GETSETELEM, flags, NFT_MSG_NEWSETELEM, "read elements", |hdr| {
            // SAFETY: `hdr` points at a complete, aligned NEWSETELEM message; element data
            // pointers are valid until the set is freed and are copied before that.
            unsafe {
                let Some(s) = NonNull::new(sys::nftnl_set_alloc()) else { return };
                if sys::nftnl_set_elems_nlmsg_parse(hdr, s.as_ptr()) >= 0 {
                    let iter = sys::nftnl_set_elems_iter_create(s.as_ptr());
                    if !iter.is_null() {
                        let mut e = sys::nftnl_set_elems_iter_next(iter);
                        while !e.is_null() {
                            let mut len = 0u32;
                            let key = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
                            let flags = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_FLAGS as u16) {
                                sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16)
                            } else {
                                0
                            };
                            let mut dlen = 0u32;
                            let data = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_DATA as u16, &mut dlen);
                            if !key.is_null() {
                                out.push(RawElem {
                                    key: std::slice::from_raw_parts(key as *const u8, len as usize).to_vec(),
                                    data: (!data.is_null()).then(|| {
                                        std::slice::from_raw_parts(data as *const u8, dlen as usize).to_vec()
                                    }),
                                    flags,
                                });
                            }
                            e = sys::nftnl_set_elems_iter_next(iter);
                        }
                        sys::nftnl_set_elems_iter_destroy(iter);
                    }
                }
                sys::nftnl_set_free(s.as_ptr());
            }
        })?;
        Ok(out)
    }

    /// Applies every change in one atomic transaction. On error nothing was applied.
    pub fn apply(&mut self, changes: &[SetChange]) -> Result<(), NftError> {
        if changes.iter().all(|c| c.is_empty()) {
            return Ok(());
        }
        let mut batch = Batch::new();
        let mut infos: Vec<MsgInfo> = Vec::new();
        // Deletes first: an interval being replaced must leave before its successor arrives.
        for (op, msg_type) in [("delete elements", MsgType::Del), ("add elements", MsgType::Add)] {
            for c in changes {
                let elems = if matches!(msg_type, MsgType::Del) { &c.del } else { &c.add };
                if elems.is_empty() {
                    continue;
                }
                let list = ElemList::new(&c.set, elems).ok_or_else(|| NftError::Rejected {
                    set: Some(c.set.to_string()),
                    op,
                    errno: libc::ENOMEM,
                    message: None,
                })?;
                while list.has_more() {
                    batch.add(&list, msg_type);
                    infos.push(MsgInfo { set: c.set.to_string(), op });
                }
            }
        }
        self.commit(batch, &infos)
    }

    /// Sends a batch as one transaction; `infos` describes its messages in order.
    pub fn commit(&mut self, batch: Batch, infos: &[MsgInfo]) -> Result<(), NftError> {
        let batch = batch.finalize();
        let seqs = batch.sequence_numbers();
        // With kernels >= 6.10 the begin/end markers take a sequence number too.
        let first_msg_seq = seqs.start + u32::from(seqs.len() == infos.len() + 2);
        let parts: Vec<&[u8]> = batch.iter().collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total + 4096 > self.sndbuf {
            let want = (total * 2).max(1 << 20);
            fd::grow_sndbuf(self.fd, want as i32)
                .map_err(|error| NftError::Socket { step: "SO_SNDBUF", error })?;
            self.sndbuf = fd::get_sockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_SNDBUF)
                .unwrap_or(want as i32) as usize;
        }
        self.drain_stale();
        self.batches_sent += 1;
        // One datagram: the kernel only treats a batch as one transaction if it arrives whole.
        fd::send_iovecs(self.fd, &parts).map_err(|e| NftError::Rejected {
            set: None,
            op: "send batch",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            message: None,
        })?;
        // nfnetlink processes the batch inside sendmsg: every ACK is queued by now.
        let mut first_error: Option<NftError> = None;
        loop {
            let n = match fd::recv(self.fd, self.bytes_mut(), true) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    return Err(NftError::NoAnswer { step: "batch ACKs", detail: e.to_string() });
                }
            };
            // SAFETY: viewing the received prefix of the u32 buffer as bytes.
            let data = unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const u8, n) };
            for m in netlink::split(data).flatten() {
                if m.msg_type != NLMSG_ERROR {
                    continue;
                }
                let Some(ack) = netlink::parse_ack(&m) else { continue };
                if ack.errno != 0 && first_error.is_none() {
                    let info = m.seq.checked_sub(first_msg_seq).and_then(|i| infos.get(i as usize));
                    first_error = Some(NftError::Rejected {
                        set: info.map(|i| i.set.clone()),
                        op: info.map(|i| i.op).unwrap_or("batch"),
                        errno: ack.errno,
                        message: ack.message,
                    });
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.buf.len() * 4;
        // SAFETY: reinterpreting our own u32 buffer as bytes of the same total length.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr() as *mut u8, len) }
    }

    fn recv_blocking(&mut self, step: &'static str) -> Result<usize, NftError> {
        let fd = self.fd;
        match fd::recv(fd, self.bytes_mut(), false) {
            Ok(Some(n)) if n > 0 => Ok(n),
            Ok(_) => Err(NftError::NoAnswer { step, detail: "timed out".into() }),
            Err(e) => Err(NftError::NoAnswer { step, detail: e.to_string() }),
        }
    }

    /// Drops replies left over from an earlier request that ended early.
    fn drain_stale(&mut self) {
        let fd = self.fd;
        while let Ok(Some(n)) = fd::recv(fd, self.bytes_mut(), true) {
            if n == 0 {
                break;
            }
        }
    }
}

fn addr_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(bytes);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

/// Splits `bytes` into an address of the family of `v4` and the rest.
fn take_addr(bytes: &[u8], v4: bool) -> Option<(IpAddr, &[u8])> {
    let n = if v4 { 4 } else { 16 };
    Some((addr_from(bytes.get(..n)?)?, bytes.get(n..)?))
}

/// A 1- or 2-byte field padded to 4 bytes: (value bytes, rest).
fn take_field(bytes: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    Some((bytes.get(..len)?, bytes.get(4..)?))
}

/// The shared tail of every DNAT map element: key `... proto . port`, data `to . to_port`.
/// Returns (proto, port, to, to_port).
fn decode_dnat(key_rest: &[u8], data: Option<&[u8]>, v4: bool) -> Option<(L4Proto, u16, IpAddr, u16)> {
    let (proto, rest) = take_field(key_rest, 1)?;
    let (port, _) = take_field(rest, 2)?;
    let (to, rest) = take_addr(data?, v4)?;
    let (to_port, _) = take_field(rest, 2)?;
    let proto = L4Proto::from_number(proto[0])?;
    Some((proto, u16::from_be_bytes([port[0], port[1]]), to, u16::from_be_bytes([to_port[0], to_port[1]])))
}

fn decode_mapping(raw: &RawElem, bound: bool, v4: bool) -> Option<Elem> {
    let (host, rest) = if bound {
        let (h, rest) = take_addr(&raw.key, v4)?;
        (Some(h), rest)
    } else {
        (None, raw.key.as_slice())
    };
    let (proto, port, to, to_port) = decode_dnat(rest, raw.data.as_deref(), v4)?;
    Some(Elem::Mapping { host, proto, port, to, to_port })
}

fn decode_port_forward(raw: &RawElem, v4: bool) -> Option<Elem> {
    let iface: crate::elements::IfName = raw.key.get(..16)?.try_into().ok()?;
    let (proto, port, to, to_port) = decode_dnat(raw.key.get(16..)?, raw.data.as_deref(), v4)?;
    Some(Elem::PortForward { iface, proto, port, to, to_port })
}

/// Turns kernel elements into `Elem`s. Interval sets store a start key and an end key
/// flagged `INTERVAL_END`; an end with no open start (old nft's leading marker) is skipped.
/// Elements that do not decode (foreign layouts) are skipped.
fn decode(kind: SetKind, raw: Vec<RawElem>) -> BTreeSet<Elem> {
    let v4 = kind.is_ipv4();
    match kind {
        SetKind::Publish4 | SetKind::Publish6 => {
            raw.iter().filter_map(|r| decode_mapping(r, false, v4)).collect()
        }
        SetKind::PublishBound4 | SetKind::PublishBound6 => {
            raw.iter().filter_map(|r| decode_mapping(r, true, v4)).collect()
        }
        SetKind::Forward4 | SetKind::Forward6 => {
            raw.iter().filter_map(|r| decode_port_forward(r, v4)).collect()
        }
        SetKind::Cgroup => raw
            .iter()
            .filter_map(|r| Some(Elem::Cgroup(u64::from_ne_bytes(r.key.get(..8)?.try_into().ok()?))))
            .collect(),
        SetKind::Pair4 | SetKind::Pair6 => raw
            .iter()
            .filter_map(|r| {
                let (a, rest) = take_addr(&r.key, v4)?;
                let (b, _) = take_addr(rest, v4)?;
                Some(Elem::Pair(a, b))
            })
            .collect(),
        SetKind::Ipv4Addr | SetKind::Ipv6Addr => raw
            .iter()
            .filter(|r| r.flags & NFT_SET_ELEM_INTERVAL_END == 0)
            .filter_map(|r| addr_from(&r.key).map(Elem::Addr))
            .collect(),
        SetKind::Ipv4Net | SetKind::Ipv6Net => {
            let mut keyed: Vec<(IpAddr, bool)> = raw
                .iter()
                .filter_map(|r| addr_from(&r.key).map(|a| (a, r.flags & NFT_SET_ELEM_INTERVAL_END != 0)))
                .collect();
            // Ends sort before starts at the same key: [a, b) followed by [b, c).
            keyed.sort_by_key(|(a, is_end)| (*a, !*is_end));
            let mut out = BTreeSet::new();
            let mut open: Option<IpAddr> = None;
            for (a, is_end) in keyed {
                match (is_end, open) {
                    (true, Some(start)) => {
                        out.insert(Elem::Range { start, end: Some(a) });
                        open = None;
                    }
                    (true, None) => {}
                    (false, Some(start)) => {
                        out.insert(Elem::Range { start, end: None });
                        open = Some(a);
                    }
                    (false, None) => open = Some(a),
                }
            }
            if let Some(start) = open {
                out.insert(Elem::Range { start, end: None });
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::elems::encode;

    fn k(a: &str, end: bool) -> RawElem {
        let ip: IpAddr = a.parse().unwrap();
        let key = match ip {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        };
        RawElem { key, data: None, flags: u32::from(end) }
    }

    #[test]
    fn interval_keys_become_ranges() {
        // As the kernel dumps them: descending, with old nft's leading 0.0.0.0 end marker.
        let raw = vec![
            k("198.51.100.10", false),
            k("192.0.3.0", true),
            k("192.0.2.128", false),
            k("192.0.2.128", true),
            k("192.0.2.0", false),
            k("0.0.0.0", true),
        ];
        let got: Vec<String> = decode(SetKind::Ipv4Net, raw).iter().map(|e| e.to_string()).collect();
        assert_eq!(got, vec!["192.0.2.0/25", "192.0.2.128/25", "198.51.100.10-255.255.255.255"]);
    }

    #[test]
    fn plain_keys_become_addresses() {
        let raw = vec![
            k("2001:db8::1", false),
            k("2001:db8::2", false),
            RawElem { key: vec![1, 2, 3], data: None, flags: 0 },
        ];
        assert_eq!(decode(SetKind::Ipv6Addr, raw).len(), 2);
    }

    #[test]
    fn encode_then_decode_is_identity_for_every_kind() {
        let a4: IpAddr = "198.18.9.2".parse().unwrap();
        let h4: IpAddr = "203.0.113.1".parse().unwrap();
        let a6: IpAddr = "2001:db8:9::2".parse().unwrap();
        let h6: IpAddr = "2001:db8::1".parse().unwrap();
        let cases = [
            (
                SetKind::Publish4,
                Elem::Mapping { host: None, proto: L4Proto::Tcp, port: 8080, to: a4, to_port: 80 },
            ),
            (
                SetKind::Publish6,
                Elem::Mapping { host: None, proto: L4Proto::Udp, port: 53, to: a6, to_port: 5353 },
            ),
            (
                SetKind::PublishBound4,
                Elem::Mapping { host: Some(h4), proto: L4Proto::Tcp, port: 443, to: a4, to_port: 8443 },
            ),
            (
                SetKind::PublishBound6,
                Elem::Mapping { host: Some(h6), proto: L4Proto::Tcp, port: 443, to: a6, to_port: 8443 },
            ),
            (SetKind::Pair4, Elem::Pair(a4, a4)),
            (
                SetKind::Forward4,
                Elem::PortForward {
                    iface: crate::elements::ifname("eth0").unwrap(),
                    proto: L4Proto::Tcp,
                    port: 10000,
                    to: a4,
                    to_port: 80,
                },
            ),
            (
                SetKind::Forward6,
                Elem::PortForward {
                    iface: crate::elements::ifname("wan.7").unwrap(),
                    proto: L4Proto::Udp,
                    port: 53,
                    to: a6,
                    to_port: 53,
                },
            ),
            (SetKind::Pair6, Elem::Pair(a6, a6)),
        ];
        for (kind, e) in cases {
            let raw = encode(&e);
            assert_eq!(raw[0].key.len() as u32, kind.key_len(), "{kind:?}");
            assert_eq!(raw[0].data.as_ref().map(|d| d.len() as u32), kind.data().map(|d| d.1), "{kind:?}");
            assert_eq!(decode(kind, raw).into_iter().collect::<Vec<_>>(), vec![e], "{kind:?}");
        }
        // The layout nft itself uses: `tcp . 8080 : 198.18.9.2 . 80`.
        let raw = encode(&Elem::Mapping { host: None, proto: L4Proto::Tcp, port: 8080, to: a4, to_port: 80 });
        assert_eq!(raw[0].key, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(raw[0].data.as_deref(), Some(&[198, 18, 9, 2, 0, 80, 0, 0][..]));
    }
}
