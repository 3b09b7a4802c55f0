//! Netlink framing shared by rtnetlink and nf_tables: split a buffer into messages and
//! decode error/ACK messages (with the kernel's extended-ACK text when present).

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One message of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    pub payload: &'a [u8],
    /// The whole message, header included (what C parsers want).
    pub raw: &'a [u8],
}

/// Iterates over the messages of a buffer; yields `Err(offset)` once on a header that does not
/// fit, then stops.
pub fn split(buf: &[u8]) -> impl Iterator<Item = Result<Message<'_>, usize>> {
    let mut offset = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset >= buf.len() {
            return None;
        }
        let at = offset;
        let hdr = buf.get(at..at + NLMSG_HDRLEN);
        let len = hdr.map(|h| u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize);
        match (hdr, len) {
            (Some(h), Some(len)) if len >= NLMSG_HDRLEN && at + len <= buf.len() => {
                offset = at + ((len + 3) & !3);
                Some(Ok(Message {
                    msg_type: u16::from_ne_bytes([h[4], h[5]]),
                    flags: u16::from_ne_bytes([h[6], h[7]]),
                    seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
                    pid: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
                    payload: &buf[at + NLMSG_HDRLEN..at + len],
                    raw: &buf[at..at + len],
                }))
            }
            _ => {
                failed = true;
                Some(Err(at))
            }
        }
    })
}

/// An `NLMSG_ERROR` message: `errno` 0 is an ACK, otherwise a positive errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub errno: i32,
    /// The kernel's explanation (`NLMSGERR_ATTR_MSG`), when extended ACKs are on.
    pub message: Option<String>,
}

pub fn parse_ack(msg: &Message<'_>) -> Option<Ack> {
    let p = msg.payload;
    let code = i32::from_ne_bytes(p.get(..4)?.try_into().ok()?);
    let errno = code.saturating_neg();
    let mut message = None;
    if msg.flags & NLM_F_ACK_TLVS != 0 {
        // After the error code comes the request's header, or the whole request unless capped.
        let orig_len = if msg.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            p.get(4..8).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)?
        };
        let mut at = 4 + ((orig_len + 3) & !3);
        while let Some(h) = p.get(at..at + 4) {
            let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
            let ty = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
            let Some(value) = p.get(at + 4..at + len.max(4)) else { break };
            if ty == NLMSGERR_ATTR_MSG {
                let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
                message = Some(String::from_utf8_lossy(&value[..end]).into_owned());
            }
            if len < 4 {
                break;
            }
            at += (len + 3) & !3;
        }
    }
    Some(Ack { errno, message })
}

/// Pseudo-random bytes for the parsers' garbage tests (a fixed LCG: the same bytes each run).
#[cfg(test)]
pub(crate) fn noise(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        v.extend(ty.to_ne_bytes());
        v.extend(flags.to_ne_bytes());
        v.extend(seq.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v.extend(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn splits_and_stops_on_garbage() {
        let mut buf = msg(16, 0, 1, &[1, 2, 3]);
        buf.extend(msg(NLMSG_DONE, 0, 2, &[0, 0, 0, 0]));
        buf.extend([9, 9, 9]);
        let parts: Vec<_> = split(&buf).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].as_ref().unwrap().payload, &[1, 2, 3]);
        assert_eq!(parts[1].as_ref().unwrap().seq, 2);
        assert_eq!(parts[2], Err(40));
    }

    #[test]
    fn ack_with_extack_message() {
        let mut p = Vec::new();
        p.extend((-2i32).to_ne_bytes());
        p.extend(msg(0x0a0c, 0, 5, &[])); // the capped request header
        let text = b"Could not process rule: No such file or directory\0";
        p.extend(((4 + text.len()) as u16).to_ne_bytes());
        p.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend(text);
        let buf = msg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 5, &p);
        let m = split(&buf).next().unwrap().unwrap();
        let ack = parse_ack(&m).unwrap();
        assert_eq!(ack.errno, 2);
        assert_eq!(ack.message.as_deref(), Some("Could not process rule: No such file or directory"));
        let plain = msg(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        let m = split(&plain).next().unwrap().unwrap();
        assert_eq!(parse_ack(&m), Some(Ack { errno: 0, message: None }));
        let short = msg(NLMSG_ERROR, 0, 1, &[1]);
        assert_eq!(parse_ack(&split(&short).next().unwrap().unwrap()), None);
    }
}
