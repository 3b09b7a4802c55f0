//! The poll loop: sources own fds and deadlines, the daemon turns a turn's events into at
//! most one reconcile. With nothing pending it sleeps in `poll(-1)`.

use crate::event::Event;
use crate::sys::poll::{poll, PollFd};
use std::os::unix::io::RawFd;
use std::time::Instant;

/// What the daemon sends back to sources after a turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// One reply line for a control client.
    Reply { client: u64, line: String },
    /// Dump links and addresses again.
    NetResync,
    /// The Docker Engine socket to use after a (re)load; `None` turns Docker off.
    DockerSocket(Option<std::path::PathBuf>),
    /// The config was reloaded (the control source binds its socket again if it was deleted).
    Reloaded,
    /// A step of the daemon's life, for the service manager.
    Lifecycle(Lifecycle),
    /// A child was reaped: the source that spawned `pid` learns how it ended.
    ChildExited { pid: i32, status: i32 },
    /// The hooks settings after a (re)load; `None` turns hooks off.
    Hooks(Option<crate::config::HooksConfig>),
    /// The Docker network requests wanted now (create, delete, connect).
    DockerNetActions(Vec<crate::docker_networks::NetAction>),
    /// The policy-routing interfaces with their addresses, when they changed.
    PolicyLinks(Vec<crate::policy::PolicyLink>),
    /// Links that changed state this turn (and the manager state, when it changed).
    LinkStates(Vec<crate::link_state::Transition>),
}

/// Steps the service manager hears about (systemd `sd_notify` semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Serving: after the first complete reconcile, and after each reload.
    Ready { status: String },
    /// A reload starts.
    Reloading,
    /// Stopping.
    Stopping,
}

/// One input of the loop: owns its fds, turns readiness into events.
pub trait Source {
    /// The fds to poll now, with the poll events wanted for each.
    fn interests(&self, out: &mut Vec<(RawFd, i16)>);
    /// The earliest time this source must run even without I/O.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// `fd` is ready with `revents`. Bounded work: a noisy source must not starve others.
    fn ready(&mut self, fd: RawFd, revents: i16, now: Instant, events: &mut Vec<Event>);
    /// The deadline passed.
    fn expired(&mut self, _now: Instant, _events: &mut Vec<Event>) {}
    /// Something the daemon sends out; most sources ignore most messages.
    fn deliver(&mut self, _msg: &Outgoing) {}
    /// After every turn, also one without events: read what the turn itself caused, so it does not wake the next poll
    /// (the nft monitor drains the notifications of netmgrd's own commits here). Events
    /// pushed here are handled at once.
    fn settle(&mut self, _events: &mut Vec<Event>) {}
}

/// Consumes a turn's events.
pub trait Handler {
    /// Handles every event of one turn; returns messages for sources and whether to stop.
    fn handle(&mut self, events: Vec<Event>) -> (Vec<Outgoing>, bool);
}

#[derive(Debug)]
pub struct LoopError(pub std::io::Error);

impl std::fmt::Display for LoopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "poll failed: {}", self.0)
    }
}

/// Runs until the handler says stop.
pub fn run(sources: &mut [Box<dyn Source>], handler: &mut dyn Handler) -> Result<(), LoopError> {
    let mut wanted: Vec<(RawFd, i16)> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    let mut fds: Vec<PollFd> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    loop {
        fds.clear();
        owners.clear();
        for (i, s) in sources.iter().enumerate() {
            wanted.clear();
            s.interests(&mut wanted);
            for &(fd, ev) in &wanted {
                fds.push(PollFd { fd, events: ev, revents: 0 });
                owners.push(i);
            }
        }
        let deadline = sources.iter().filter_map(|s| s.deadline()).min();
        let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if !events.is_empty() {
            timeout = Some(std::time::Duration::ZERO); // settled events wait for no one
        }
        poll(&mut fds, timeout).map_err(LoopError)?;
        let now = Instant::now();
        for (pfd, &owner) in fds.iter().zip(&owners) {
            if pfd.revents != 0 {
                sources[owner].ready(pfd.fd, pfd.revents, now, &mut events);
            }
        }
        for s in sources.iter_mut() {
            if s.deadline().is_some_and(|d| d <= now) {
                s.expired(now, &mut events);
            }
        }
        if !events.is_empty() {
            let (out, stop) = handler.handle(std::mem::take(&mut events));
            for msg in &out {
                for s in sources.iter_mut() {
                    s.deliver(msg);
                }
            }
            if stop {
                return Ok(());
            }
        }
        // Every turn ends here, with or without events (per-turn budgets start again).
        for s in sources.iter_mut() {
            s.settle(&mut events);
        }
    }
}
