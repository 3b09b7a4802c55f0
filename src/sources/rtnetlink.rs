//! rtnetlink source: links and IPv4/IPv6 addresses.
//!
//! Two sockets: one joined to the link/address multicast groups, one for dumps. While a dump
//! runs the multicast socket is not read, so its queued events apply after the dump's
//! snapshot (each event is "ensure present/absent", so replaying them converges). `ENOBUFS`
//! (events lost) grows the buffer and dumps again.

use crate::event::{Address, Event, Link};
use crate::event_loop::{Outgoing, Source};
use crate::sys::{fd as sysfd, poll::POLLIN};
use crate::wire::rtnetlink::{dump_request, parse, DumpKind, RtnlMessage};
use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Instant;

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
/// recv calls per wakeup and socket: enough for a burst, bounded so others get a turn.
const RECV_BUDGET: usize = 64;
const INITIAL_RCVBUF: i32 = 1 << 20;
const MAX_RCVBUF: i32 = 32 << 20;

enum DumpState {
    Idle,
    Links { seq: u32 },
    Addrs { seq: u32 },
}

pub struct RtnlSource {
    mcast: NlSocket,
    dump: NlSocket,
    state: DumpState,
    /// A resync was asked for while a dump was running: dump again when it ends.
    again: bool,
    seq: u32,
    links: Vec<Link>,
    addrs: Vec<Address>,
    buf: Vec<u8>,
    rcvbuf: i32,
    /// After lost events (ENOBUFS), one more dump once the events have been quiet this long:
    /// events around the first dump may have been lost too, and a flapping link must end in
    /// its real state. No timer otherwise.
    verify_at: Option<Instant>,
}

const VERIFY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

fn open(groups: u32) -> io::Result<NlSocket> {
    let s = NlSocket::connect(NlFamily::Route, None, Groups::new_bitmask(groups))?;
    s.nonblock()?;
    Ok(s)
}

impl RtnlSource {
    /// Opens both sockets and starts the initial dump.
    pub fn open() -> io::Result<RtnlSource> {
        let mcast = open(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)?;
        sysfd::grow_rcvbuf(mcast.as_raw_fd(), INITIAL_RCVBUF)?;
        let dump = open(0)?;
        sysfd::grow_rcvbuf(dump.as_raw_fd(), INITIAL_RCVBUF)?;
        let mut s = RtnlSource {
            mcast,
            dump,
            state: DumpState::Idle,
            again: false,
            seq: 0,
            links: Vec::new(),
            addrs: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            rcvbuf: INITIAL_RCVBUF,
            verify_at: None,
        };
        s.start_dump()?;
        Ok(s)
    }

    fn start_dump(&mut self) -> io::Result<()> {
        self.links.clear();
        self.addrs.clear();
        self.seq = self.seq.wrapping_add(1);
        self.dump.send(dump_request(DumpKind::Links, self.seq), neli::consts::socket::Msg::empty())?;
        self.state = DumpState::Links { seq: self.seq };
        Ok(())
    }

    fn resync(&mut self, events: &mut Vec<Event>) {
        if !matches!(self.state, DumpState::Idle) {
            self.again = true;
            return;
        }
        events.push(Event::NetResyncing);
        if let Err(e) = self.start_dump() {
            log::error!("rtnetlink: cannot start dump: {e}");
            self.state = DumpState::Idle;
        }
    }

    fn read_dump(&mut self, events: &mut Vec<Event>) {
        for _ in 0..RECV_BUDGET {
            let n = match self.dump.recv(&mut self.buf[..], neli::consts::socket::Msg::empty()) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("rtnetlink dump: {e}; dumping again");
                    self.state = DumpState::Idle;
                    self.resync(events);
                    return;
                }
            };
            let current = match self.state {
                DumpState::Links { seq } | DumpState::Addrs { seq } => seq,
                DumpState::Idle => return,
            };
            for msg in parse(&self.buf[..n]) {
                match msg {
                    Ok(RtnlMessage::Link(l)) => self.links.push(l),
                    Ok(RtnlMessage::AddrNew(a)) => self.addrs.push(a),
                    Ok(RtnlMessage::Done { seq }) if seq == current => {
                        if let Err(e) = self.dump_done(events) {
                            log::error!("rtnetlink: cannot continue dump: {e}");
                            self.state = DumpState::Idle;
                        }
                        return;
                    }
                    Ok(RtnlMessage::DumpInterrupted { seq }) | Ok(RtnlMessage::Error { seq, .. })
                        if seq == current =>
                    {
                        log::info!("rtnetlink dump interrupted; dumping again");
                        self.state = DumpState::Idle;
                        self.resync(events);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("rtnetlink dump: {e}"),
                }
            }
        }
    }

    fn dump_done(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        match self.state {
            DumpState::Links { .. } => {
                self.seq = self.seq.wrapping_add(1);
                self.dump
                    .send(dump_request(DumpKind::Addresses, self.seq), neli::consts::socket::Msg::empty())?;
                self.state = DumpState::Addrs { seq: self.seq };
            }
            DumpState::Addrs { .. } => {
                self.state = DumpState::Idle;
                events.push(Event::NetSnapshot {
                    links: std::mem::take(&mut self.links),
                    addrs: std::mem::take(&mut self.addrs),
                });
                if std::mem::take(&mut self.again) {
                    self.resync(events);
                }
            }
            DumpState::Idle => {}
        }
        Ok(())
    }

    fn read_mcast(&mut self, events: &mut Vec<Event>) {
        for _ in 0..RECV_BUDGET {
            let n = match self.mcast.recv(&mut self.buf[..], neli::consts::socket::Msg::empty()) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.rcvbuf = (self.rcvbuf * 2).min(MAX_RCVBUF);
                    log::warn!(
                        "rtnetlink: events lost (ENOBUFS); receive buffer now {} KiB, dumping again",
                        self.rcvbuf / 1024
                    );
                    let _ = sysfd::grow_rcvbuf(self.mcast.as_raw_fd(), self.rcvbuf);
                    self.verify_at = Some(Instant::now() + VERIFY_AFTER);
                    self.resync(events);
                    return;
                }
                Err(e) => {
                    log::error!("rtnetlink: {e}");
                    return;
                }
            };
            // Still busy: the check after lost events waits for quiet.
            if self.verify_at.is_some() {
                self.verify_at = Some(Instant::now() + VERIFY_AFTER);
            }
            for msg in parse(&self.buf[..n]) {
                match msg {
                    Ok(RtnlMessage::Link(l)) => events.push(Event::LinkChanged(l)),
                    Ok(RtnlMessage::LinkGone { index }) => events.push(Event::LinkRemoved { index }),
                    Ok(RtnlMessage::AddrNew(a)) => events.push(Event::AddrAdded(a)),
                    Ok(RtnlMessage::AddrGone(a)) => events.push(Event::AddrRemoved(a)),
                    Ok(_) => {}
                    Err(e) => log::warn!("rtnetlink: {e}"),
                }
            }
            // While a dump runs, later events wait in the socket (see the module doc).
            if !matches!(self.state, DumpState::Idle) {
                return;
            }
        }
    }
}

impl Source for RtnlSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        match self.state {
            DumpState::Idle => out.push((self.mcast.as_raw_fd(), POLLIN)),
            _ => out.push((self.dump.as_raw_fd(), POLLIN)),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.verify_at
    }

    fn expired(&mut self, now: Instant, events: &mut Vec<Event>) {
        if self.verify_at.is_some_and(|t| t <= now) {
            self.verify_at = None;
            log::info!("rtnetlink: dumping again after the lost events, now that it is quiet");
            self.resync(events);
        }
    }

    fn ready(&mut self, fd: RawFd, _revents: i16, _now: Instant, events: &mut Vec<Event>) {
        if fd == self.dump.as_raw_fd() {
            self.read_dump(events);
        } else if matches!(self.state, DumpState::Idle) {
            self.read_mcast(events);
        }
    }

    fn deliver(&mut self, msg: &Outgoing) {
        if *msg == Outgoing::NetResync {
            let mut ignored = Vec::new();
            self.resync(&mut ignored);
        }
    }
}
