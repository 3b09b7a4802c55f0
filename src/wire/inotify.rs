//! inotify event records (`struct inotify_event`: wd, mask, cookie, len, name), decoded from
//! the bytes one `read(2)` returned. Pure.

pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_Q_OVERFLOW: u32 = 0x4000;
pub const IN_IGNORED: u32 = 0x8000;
pub const IN_ISDIR: u32 = 0x4000_0000;
const HEADER: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InotifyEvent {
    pub wd: i32,
    pub mask: u32,
    /// The entry's name inside the watched directory (empty for events on the directory).
    pub name: String,
}

/// Every complete record; a truncated tail is dropped (the kernel never splits a record).
pub fn parse(buf: &[u8]) -> Vec<InotifyEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(h) = buf.get(at..at + HEADER) {
        let word = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
        let wd = i32::from_ne_bytes(word(0));
        let mask = u32::from_ne_bytes(word(4));
        let len = u32::from_ne_bytes(word(12)) as usize;
        let Some(raw) = buf.get(at + HEADER..at + HEADER + len) else { break };
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        out.push(InotifyEvent { wd, mask, name: String::from_utf8_lossy(&raw[..end]).into_owned() });
        at += HEADER + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, name: &str) -> Vec<u8> {
        let mut padded = name.as_bytes().to_vec();
        padded.resize(name.len().div_ceil(16).max(1) * 16, 0);
        let mut v = wd.to_ne_bytes().to_vec();
        v.extend(mask.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v.extend((padded.len() as u32).to_ne_bytes());
        v.extend(padded);
        v
    }

    #[test]
    fn records_and_truncation() {
        let mut buf = record(1, IN_CREATE | IN_ISDIR, "postfix.service");
        buf.extend(record(2, IN_Q_OVERFLOW, ""));
        let ev = parse(&buf);
        assert_eq!(ev[0], InotifyEvent { wd: 1, mask: IN_CREATE | IN_ISDIR, name: "postfix.service".into() });
        assert_eq!(ev[1].mask, IN_Q_OVERFLOW);
        for cut in 0..buf.len() {
            assert!(parse(&buf[..cut]).len() <= 2);
        }
    }
}
