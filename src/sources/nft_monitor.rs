//! nftables monitor source: a second `NETLINK_NETFILTER` socket in the `NFNLGRP_NFTABLES`
//! group (what `nft monitor` reads). Notifications are gathered per commit; at the commit's
//! `NEWGEN` they become one `Event::NftCommit`, unless the committer is netmgrd itself (its
//! pid), whose commits cause no work. `ENOBUFS` or a message that does not decode means
//! notifications were lost: `Event::NftLost`, and the daemon re-reads everything it manages.

use crate::event::{Event, NftChange, NftCommit};
use crate::event_loop::Source;
use crate::sys::{fd as sysfd, poll::POLLIN};
use crate::wire::nft_monitor::{parse, Notification};
use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Instant;

/// `NFNLGRP_NFTABLES` as a bind bitmask (group 7).
const NFNLGRP_NFTABLES_MASK: u32 = 1 << 6;
/// recv calls per wakeup: a large foreign commit is read over a few turns, others get theirs.
const RECV_BUDGET: usize = 64;
/// Every element of a 10,000-element commit is one notification: room for a few of those.
const RCVBUF: i32 = 16 << 20;
/// Distinct objects one commit may touch before netmgrd stops itemising and re-reads all.
const MAX_CHANGES: usize = 4096;

pub struct NftMonitorSource {
    sock: NlSocket,
    buf: Vec<u8>,
    own_pid: u32,
    /// Changes of the commit in progress (until its `NEWGEN`).
    pending: Vec<NftChange>,
    overflowed: bool,
}

impl NftMonitorSource {
    pub fn open() -> io::Result<NftMonitorSource> {
        let sock = NlSocket::connect(NlFamily::Netfilter, None, Groups::new_bitmask(NFNLGRP_NFTABLES_MASK))?;
        sock.nonblock()?;
        sysfd::grow_rcvbuf(sock.as_raw_fd(), RCVBUF)?;
        Ok(NftMonitorSource {
            sock,
            buf: vec![0u8; 256 * 1024],
            own_pid: std::process::id(),
            pending: Vec::new(),
            overflowed: false,
        })
    }

    fn lost(&mut self, why: String, events: &mut Vec<Event>) {
        self.pending.clear();
        self.overflowed = false;
        if !events.iter().any(|e| matches!(e, Event::NftLost(_))) {
            events.push(Event::NftLost(why));
        }
    }

    fn note(&mut self, change: NftChange) {
        let same = |c: &NftChange| {
            (c.kind, c.op, c.family, &c.table, &c.name)
                == (change.kind, change.op, change.family, &change.table, &change.name)
        };
        if let Some(c) = self.pending.iter_mut().find(|c| same(c)) {
            c.count = c.count.saturating_add(change.count);
        } else if self.pending.len() < MAX_CHANGES {
            self.pending.push(change);
        } else {
            self.overflowed = true;
        }
    }
}

impl Source for NftMonitorSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        out.push((self.sock.as_raw_fd(), POLLIN));
    }

    fn ready(&mut self, _fd: RawFd, _revents: i16, _now: Instant, events: &mut Vec<Event>) {
        self.drain(events);
    }

    /// The notifications of the turn's own commit are queued before its ACK came back: read
    /// them now, so they never wake the loop.
    fn settle(&mut self, events: &mut Vec<Event>) {
        self.drain(events);
    }
}

impl NftMonitorSource {
    fn drain(&mut self, events: &mut Vec<Event>) {
        for _ in 0..RECV_BUDGET {
            let n = match sysfd::recv(self.sock.as_raw_fd(), &mut self.buf, true) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.lost("nftables notifications overflowed the socket (ENOBUFS)".into(), events);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.lost(format!("nftables monitor: {e}"), events);
                    return;
                }
            };
            let notes = parse(&self.buf[..n]);
            for note in notes {
                match note {
                    Ok(Notification::Change(c)) => self.note(c),
                    Ok(Notification::NewGen { pid, process }) => {
                        let changes = std::mem::take(&mut self.pending);
                        if std::mem::take(&mut self.overflowed) {
                            self.lost(
                                format!("a commit by pid {pid} ({process}) touched too many objects"),
                                events,
                            );
                        } else if pid != self.own_pid && !changes.is_empty() {
                            events.push(Event::NftCommit(NftCommit { pid, process, changes }));
                        }
                    }
                    Ok(Notification::Other) => {}
                    Err(e) => self.lost(e.to_string(), events),
                }
            }
        }
    }
}
