//! Policy routing: keeps netmgrd's rules and routes (protocol `policy::PROTOCOL`) equal to
//! what `policy::plan` wants for the configured interfaces. One socket follows route and rule
//! changes (the main table's routes of those interfaces, and anyone touching netmgrd's own);
//! another sends requests and reads their ACKs (route and rule changes are done by the kernel
//! inside `sendmsg`, so the ACKs are there when it returns). The daemon sends the interfaces'
//! addresses (`Outgoing::PolicyLinks`); nothing is changed before the first of those, so a
//! restart finds what the last run left, keeps what is still wanted and removes the rest.

use crate::event::Event;
use crate::event_loop::{Outgoing, Source};
use crate::policy::{plan, route_key, rule_key, PolicyLink, RouteKey, RuleKey, PROTOCOL};
use crate::report::PolicyReport;
use crate::sys::fd as sysfd;
use crate::sys::poll::{poll, PollFd, POLLIN};
use crate::wire::route::{
    dump_request, parse, route_request, rule_request, Route, RouteMessage, Rule, RT_TABLE_MAIN,
};
use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV4_RULE: u32 = 0x80;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
const RTMGRP_IPV6_RULE: u32 = 1 << 18;
const RECV_BUDGET: usize = 64;
const RCVBUF: i32 = 4 << 20;
/// How long a dump or the ACKs of a request batch may take.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum PolicyError {
    Io(io::Error),
    Refused { what: String, errno: i32, message: Option<String> },
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Io(e) => write!(f, "rtnetlink: {e}"),
            PolicyError::Refused { what, errno, message } => {
                write!(f, "{what}: {}", io::Error::from_raw_os_error(*errno))?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
        }
    }
}

pub struct PolicyRouter {
    mcast: NlSocket,
    req: NlSocket,
    seq: u32,
    /// The configured interfaces as the daemon last described them; `None` until then.
    links: Option<Vec<PolicyLink>>,
    /// Main-table routes out of the configured interfaces (only those: a router with a full
    /// BGP table must not be copied into memory).
    main: BTreeMap<RouteKey, Route>,
    oifs: std::collections::BTreeSet<u32>,
    /// Interfaces whose main-table routes changed since the last turn (for `routes.d`).
    changed_oifs: std::collections::BTreeSet<u32>,
    /// netmgrd's own rules and routes, as the kernel has them.
    rules: BTreeMap<RuleKey, Rule>,
    routes: BTreeMap<RouteKey, Route>,
    last_error: Option<String>,
    /// Something changed: reconcile at the end of the turn.
    dirty: bool,
    buf: Vec<u8>,
}

fn socket(groups: u32) -> io::Result<NlSocket> {
    let s = NlSocket::connect(NlFamily::Route, None, Groups::new_bitmask(groups))?;
    s.nonblock()?;
    sysfd::grow_rcvbuf(s.as_raw_fd(), RCVBUF)?;
    Ok(s)
}

impl PolicyRouter {
    pub fn open() -> io::Result<PolicyRouter> {
        let mut p = PolicyRouter {
            mcast: socket(RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_RULE | RTMGRP_IPV6_RULE)?,
            req: socket(0)?,
            seq: 0,
            links: None,
            main: BTreeMap::new(),
            oifs: Default::default(),
            changed_oifs: Default::default(),
            rules: BTreeMap::new(),
            routes: BTreeMap::new(),
            last_error: None,
            dirty: false,
            buf: vec![0u8; 64 * 1024],
        };
        p.dump()?;
        Ok(p)
    }

    /// Reads every route and rule again (at start, and when events were lost).
    fn dump(&mut self) -> io::Result<()> {
        self.main.clear();
        self.rules.clear();
        self.routes.clear();
        for rules in [false, true] {
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            sysfd::send_iovecs(self.req.as_raw_fd(), &[&dump_request(rules, seq)])?;
            let deadline = Instant::now() + ANSWER_WAIT;
            'dump: loop {
                let n = self.recv_req(deadline)?;
                for m in parse(&self.buf[..n]) {
                    match m {
                        RouteMessage::Done { seq: s } if s == seq => break 'dump,
                        RouteMessage::Ack { seq: s, errno, .. } if s == seq && errno != 0 => {
                            return Err(io::Error::from_raw_os_error(errno))
                        }
                        other => {
                            self.note(other);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One answer on the request socket, waiting until `deadline`.
    fn recv_req(&mut self, deadline: Instant) -> io::Result<usize> {
        loop {
            if let Some(n) = sysfd::recv(self.req.as_raw_fd(), &mut self.buf, true)? {
                return Ok(n);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from rtnetlink"));
            }
            let mut fds = [PollFd { fd: self.req.as_raw_fd(), events: POLLIN, revents: 0 }];
            poll(&mut fds, Some(left))?;
        }
    }

    /// Takes in one route or rule message; true when it changes what netmgrd looks at.
    fn note(&mut self, m: RouteMessage) -> bool {
        match m {
            RouteMessage::NewRoute(r) if r.protocol == PROTOCOL => {
                self.routes.insert(route_key(&r), r).is_none()
            }
            RouteMessage::DelRoute(r) if r.protocol == PROTOCOL => {
                self.routes.remove(&route_key(&r)).is_some()
            }
            RouteMessage::NewRoute(r)
                if r.table == RT_TABLE_MAIN && r.oif.is_some_and(|o| self.oifs.contains(&o)) =>
            {
                let (k, oif) = (route_key(&r), r.oif.unwrap_or(0));
                let changed = self.main.insert(k, r.clone()) != Some(r);
                if changed {
                    self.changed_oifs.insert(oif);
                }
                changed
            }
            RouteMessage::DelRoute(r) if r.table == RT_TABLE_MAIN => {
                let gone = self.main.remove(&route_key(&r)).is_some();
                if gone {
                    self.changed_oifs.insert(r.oif.unwrap_or(0));
                }
                gone
            }
            RouteMessage::NewRule(r) if r.protocol == PROTOCOL => {
                self.rules.insert(rule_key(&r), r).is_none()
            }
            RouteMessage::DelRule(r) if r.protocol == PROTOCOL => self.rules.remove(&rule_key(&r)).is_some(),
            _ => false,
        }
    }

    /// Sends the requests that make the kernel's rules and routes what the plan wants.
    fn reconcile(&mut self) -> Result<(), PolicyError> {
        let Some(links) = &self.links else { return Ok(()) };
        let want = plan(links, self.main.values());
        let mut requests: Vec<(Vec<u8>, String, bool)> = Vec::new();
        let next = |seq: &mut u32| {
            *seq = seq.wrapping_add(1);
            *seq
        };
        // Adds first (a replaced default route has no gap), then deletes.
        for (k, r) in &want.routes {
            if !self.routes.contains_key(k) {
                requests.push((
                    route_request(true, r, next(&mut self.seq)),
                    format!("add route {}", describe_route(r)),
                    true,
                ));
            }
        }
        for (k, r) in &want.rules {
            if !self.rules.contains_key(k) {
                requests.push((
                    rule_request(true, r, next(&mut self.seq)),
                    format!("add rule {}", describe_rule(r)),
                    true,
                ));
            }
        }
        for (k, r) in &self.routes {
            if !want.routes.contains_key(k) {
                requests.push((
                    route_request(false, r, next(&mut self.seq)),
                    format!("delete route {}", describe_route(r)),
                    false,
                ));
            }
        }
        for (k, r) in &self.rules {
            if !want.rules.contains_key(k) {
                requests.push((
                    rule_request(false, r, next(&mut self.seq)),
                    format!("delete rule {}", describe_rule(r)),
                    false,
                ));
            }
        }
        if requests.is_empty() {
            return Ok(());
        }
        let first_seq = self.seq.wrapping_sub(requests.len() as u32 - 1);
        let parts: Vec<&[u8]> = requests.iter().map(|(b, _, _)| b.as_slice()).collect();
        sysfd::send_iovecs(self.req.as_raw_fd(), &parts).map_err(PolicyError::Io)?;
        for (_, what, _) in &requests {
            log::info!("policy routing: {what}");
        }
        // Every request is answered; the first refusal is the error reported.
        let mut answered = 0;
        let mut error = None;
        let deadline = Instant::now() + ANSWER_WAIT;
        while answered < requests.len() {
            let n = self.recv_req(deadline).map_err(PolicyError::Io)?;
            for m in parse(&self.buf[..n]) {
                if let RouteMessage::Ack { seq, errno, message } = m {
                    let i = seq.wrapping_sub(first_seq) as usize;
                    let Some((_, what, add)) = requests.get(i) else { continue };
                    answered += 1;
                    // Already there / already gone: the goal is reached all the same.
                    let fine = errno == 0
                        || (*add && errno == libc::EEXIST)
                        || (!*add && (errno == libc::ESRCH || errno == libc::ENOENT));
                    if !fine && error.is_none() {
                        error = Some(PolicyError::Refused { what: what.clone(), errno, message });
                    }
                }
            }
        }
        // What is applied now: the plan, minus what was refused (the events confirm it).
        self.routes.retain(|k, _| want.routes.contains_key(k));
        self.rules.retain(|k, _| want.rules.contains_key(k));
        if error.is_none() {
            self.routes = want.routes;
            self.rules = want.rules;
        }
        error.map_or(Ok(()), Err)
    }

    fn read_mcast(&mut self) {
        for _ in 0..RECV_BUDGET {
            let n = match sysfd::recv(self.mcast.as_raw_fd(), &mut self.buf, true) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    log::warn!("policy routing: route events lost (ENOBUFS); reading routes and rules again");
                    if let Err(e) = self.dump() {
                        log::error!("policy routing: {e}");
                    }
                    self.dirty = true;
                    return;
                }
                Err(e) => {
                    log::error!("policy routing: {e}");
                    return;
                }
            };
            for m in parse(&self.buf[..n]) {
                if self.note(m) {
                    self.dirty = true;
                }
            }
        }
    }

    fn report(&self) -> PolicyReport {
        PolicyReport { rules: self.rules.len(), routes: self.routes.len(), error: self.last_error.clone() }
    }
}

fn describe_route(r: &Route) -> String {
    let dst = r.dst.map_or("default".to_string(), |d| d.to_string());
    let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    format!("{dst}{via} dev #{} table {}", r.oif.unwrap_or(0), r.table)
}

/// `default via 198.51.100.2`, `198.51.100.0/24`, as hooks get them.
fn short_route(r: &Route) -> String {
    let dst = r.dst.map_or("default".to_string(), |d| d.to_string());
    r.gateway.map_or(dst.clone(), |g| format!("{dst} via {g}"))
}

fn describe_rule(r: &Rule) -> String {
    match (r.src, r.dst) {
        (Some(s), _) => format!("from {s} lookup {} pref {}", r.table, r.priority),
        (_, Some(d)) => format!("to {d} lookup {} pref {}", r.table, r.priority),
        _ => format!("lookup {} pref {}", r.table, r.priority),
    }
}

impl Source for PolicyRouter {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        out.push((self.mcast.as_raw_fd(), POLLIN));
    }

    /// Still dirty after `settle`'s rounds: run again at once (never a timer otherwise).
    fn deadline(&self) -> Option<Instant> {
        (self.dirty && self.links.is_some()).then(Instant::now)
    }

    fn ready(&mut self, _fd: RawFd, _revents: i16, _now: Instant, _events: &mut Vec<Event>) {
        self.read_mcast();
    }

    fn deliver(&mut self, msg: &Outgoing) {
        if let Outgoing::PolicyLinks(links) = msg {
            let oifs = links.iter().map(|l| l.index).collect();
            self.links = Some(links.clone());
            self.dirty = true;
            if oifs != self.oifs {
                // Other interfaces: their main-table routes are read again.
                self.oifs = oifs;
                self.changed_oifs.extend(self.oifs.iter().copied());
                if let Err(e) = self.dump() {
                    log::error!("policy routing: cannot read routes: {e}");
                    self.last_error = Some(format!("cannot read routes: {e}"));
                }
            }
        }
    }

    /// At the end of every turn: reconcile what changed, then drain the events of netmgrd's
    /// own requests so they do not wake the next poll.
    fn settle(&mut self, events: &mut Vec<Event>) {
        // Reading the events of our own requests may bring main-table changes that arrived
        // meanwhile (they make it dirty again; our own echoes do not): a few rounds at most.
        let mut rounds = 0;
        while self.dirty && self.links.is_some() && rounds < 4 {
            rounds += 1;
            self.dirty = false;
            match self.reconcile() {
                Ok(()) => self.last_error = None,
                Err(e) => {
                    log::warn!("policy routing: {e}");
                    self.last_error = Some(e.to_string());
                }
            }
            self.read_mcast();
        }
        if rounds > 0 {
            // Every reconcile is reported: the daemon counts a policy interface `configured`
            // only after it.
            events.push(Event::Policy(self.report()));
        }
        // Last, so main-table changes read just above are reported too.
        for index in std::mem::take(&mut self.changed_oifs) {
            let routes = self.main.values().filter(|r| r.oif == Some(index)).map(short_route).collect();
            events.push(Event::LinkRoutes { index, routes });
        }
    }
}
