//! Docker Engine source: HTTP/1.1 over the Engine's unix socket, every connection a
//! non-blocking state machine in the poll loop (no thread, no blocking read).
//!
//! Sequence: unversioned `GET /version` (negotiate), then the `/events` stream, then
//! `GET /containers/json` and an inspect per container. Events that arrive during that sync
//! wait until the snapshot is out, so an older inspect never overrides a newer event. The
//! stream ending (dockerd restart) means reconnect with capped exponential backoff and sync
//! again. Events are hints: each one leads to an inspect, whose answer is the truth.

use crate::docker_networks::NetAction;
use crate::event::{EngineState, EngineStatus, Event};
use crate::event_loop::{Outgoing, Source};
use crate::sys::fd::connect_unix_nonblocking;
use crate::sys::poll::{POLLIN, POLLOUT};
use crate::wire::docker::{self, ApiVersion, Container, EngineEvent};
use crate::wire::http::{self, Response};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Inspect requests in flight at once.
const MAX_PARALLEL: usize = 8;
/// A version/list/inspect answer that takes longer means the Engine is stuck: reconnect.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Body caps: a container list for thousands of containers fits; an event line is small.
const MAX_BODY: usize = 32 << 20;
const MAX_EVENT_LINE: usize = 1 << 20;
const READ_BUDGET: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    Version,
    Events,
    List,
    Inspect(String),
    Networks,
    Action(NetAction),
}

/// A network request that failed is tried again after this long (or when the plan changes).
const ACTION_RETRY: Duration = Duration::from_secs(30);

struct Conn {
    stream: UnixStream,
    out: Vec<u8>,
    resp: Response,
    purpose: Purpose,
    deadline: Option<Instant>,
}

struct Sync {
    pending: usize,
    found: Vec<Container>,
    held_back: Vec<EngineEvent>,
}

pub struct DockerSource {
    /// `None`: Docker integration is off (no `docker:` section).
    socket: Option<PathBuf>,
    conns: Vec<Conn>,
    queue: VecDeque<String>,
    version: Option<ApiVersion>,
    sync: Option<Sync>,
    retry_at: Option<Instant>,
    backoff: Duration,
    status: EngineStatus,
    event_line: Vec<u8>,
    /// The network requests the daemon wants made now.
    wanted: Vec<NetAction>,
    /// Failed requests, not tried again before this time.
    failed: std::collections::BTreeMap<NetAction, Instant>,
    /// Events from `deliver` (which has no event list), handed over in `settle`.
    pending: Vec<Event>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DockerSource {
    /// Starts connecting at once when `socket` is given; an absent Engine is retried with
    /// backoff.
    pub fn new(socket: Option<PathBuf>) -> DockerSource {
        let mut s = DockerSource {
            socket: None,
            conns: Vec::new(),
            queue: VecDeque::new(),
            version: None,
            sync: None,
            retry_at: None,
            backoff: BACKOFF_START,
            status: EngineStatus::default(),
            event_line: Vec::new(),
            wanted: Vec::new(),
            failed: Default::default(),
            pending: Vec::new(),
        };
        s.reconfigure(socket);
        s
    }

    /// A reload changed the `docker:` section: start over with the new socket (or stop).
    fn reconfigure(&mut self, socket: Option<PathBuf>) {
        if socket == self.socket && socket.is_some() {
            return;
        }
        self.conns.clear();
        self.queue.clear();
        self.sync = None;
        self.version = None;
        self.event_line.clear();
        self.backoff = BACKOFF_START;
        self.retry_at = socket.as_ref().map(|_| Instant::now());
        self.status = EngineStatus {
            state: if socket.is_some() { EngineState::Connecting } else { EngineState::Off },
            socket: socket.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            ..Default::default()
        };
        self.socket = socket;
    }

    fn open(&mut self, purpose: Purpose, now: Instant) -> io::Result<()> {
        let socket = self.socket.as_ref().ok_or_else(|| io::Error::other("docker is off"))?;
        let stream = connect_unix_nonblocking(socket)?;
        let path = match (&purpose, self.version) {
            (Purpose::Version, _) => "/version".to_string(),
            (Purpose::Events, Some(v)) => docker::events_path(v),
            (Purpose::List, Some(v)) => format!("/v{v}/containers/json"),
            (Purpose::Inspect(id), Some(v)) => format!("/v{v}/containers/{}/json", http::url_encode(id)),
            (Purpose::Networks, Some(v)) => format!("/v{v}/networks"),
            (Purpose::Action(NetAction::Create { .. }), Some(v)) => format!("/v{v}/networks/create"),
            (Purpose::Action(NetAction::Delete { id, .. }), Some(v)) => {
                format!("/v{v}/networks/{}", http::url_encode(id))
            }
            (Purpose::Action(NetAction::Connect { network_id, .. }), Some(v)) => {
                format!("/v{v}/networks/{}/connect", http::url_encode(network_id))
            }
            (_, None) => return Err(io::Error::other("no API version negotiated")),
        };
        let streaming = purpose == Purpose::Events;
        let out = match &purpose {
            Purpose::Action(NetAction::Create { owner, name, subnet, gateway, ipv6_subnet }) => {
                http::post(&path, &docker::network_create_body(owner, name, *subnet, *gateway, *ipv6_subnet))
            }
            Purpose::Action(NetAction::Connect { container_id, ip, .. }) => {
                http::post(&path, &docker::network_connect_body(container_id, *ip))
            }
            Purpose::Action(NetAction::Delete { .. }) => http::delete(&path),
            _ => http::get(&path, streaming),
        };
        let mut conn = Conn {
            stream,
            out,
            resp: Response::new(if streaming { MAX_EVENT_LINE } else { MAX_BODY }),
            deadline: (!streaming).then_some(now + REQUEST_TIMEOUT),
            purpose,
        };
        flush(&mut conn)?;
        self.conns.push(conn);
        Ok(())
    }

    fn set_state(&mut self, state: EngineState, error: Option<String>, events: &mut Vec<Event>) {
        self.status.state = state;
        self.status.error = error;
        self.status.api_version = self.version.map(|v| v.to_string());
        events.push(Event::Engine(self.status.clone()));
    }

    /// Drops every connection and schedules a reconnect.
    fn fail(&mut self, why: String, now: Instant, events: &mut Vec<Event>) {
        let was_up = self.status.state == EngineState::Connected || self.status.state == EngineState::Syncing;
        if was_up || self.status.error.as_deref() != Some(why.as_str()) {
            log::warn!("docker: {why}; retrying in {} ms", self.backoff.as_millis());
        }
        self.conns.clear();
        self.queue.clear();
        self.sync = None;
        self.version = None;
        self.event_line.clear();
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.set_state(EngineState::Disconnected, Some(why), events);
    }

    fn start(&mut self, now: Instant, events: &mut Vec<Event>) {
        self.retry_at = None;
        if let Err(e) = self.open(Purpose::Version, now) {
            let path = self.socket.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            self.fail(format!("cannot connect to {path}: {e}"), now, events);
        }
    }

    fn pump_queue(&mut self, now: Instant, events: &mut Vec<Event>) {
        while self.conns.iter().filter(|c| matches!(c.purpose, Purpose::Inspect(_))).count() < MAX_PARALLEL {
            let Some(id) = self.queue.pop_front() else { return };
            if let Err(e) = self.open(Purpose::Inspect(id), now) {
                self.fail(format!("cannot connect for inspect: {e}"), now, events);
                return;
            }
        }
    }

    fn on_engine_event(&mut self, e: EngineEvent, events: &mut Vec<Event>) {
        if let Some(sync) = &mut self.sync {
            sync.held_back.push(e);
            return;
        }
        match e {
            EngineEvent::Inspect(id) => {
                if !self.queue.contains(&id) {
                    self.queue.push_back(id);
                }
            }
            EngineEvent::Gone(id) => {
                self.queue.retain(|q| *q != id);
                events.push(Event::ContainerGone(id));
            }
            EngineEvent::Networks => self.list_networks(Instant::now(), events),
            EngineEvent::Ignored => {}
        }
    }

    /// Lists the Engine's networks (unless a listing is already on its way).
    fn list_networks(&mut self, now: Instant, events: &mut Vec<Event>) {
        if self.version.is_none() || self.conns.iter().any(|c| c.purpose == Purpose::Networks) {
            return;
        }
        if let Err(e) = self.open(Purpose::Networks, now) {
            self.fail(format!("cannot connect to list networks: {e}"), now, events);
        }
    }

    /// Starts the wanted network requests that are not running and not waiting after a failure.
    fn pump_actions(&mut self, now: Instant, events: &mut Vec<Event>) {
        if self.status.state != EngineState::Connected {
            return;
        }
        self.failed.retain(|a, until| *until > now && self.wanted.contains(a));
        let todo: Vec<NetAction> = self
            .wanted
            .iter()
            .filter(|a| !self.failed.contains_key(*a))
            .filter(|a| !self.conns.iter().any(|c| c.purpose == Purpose::Action((*a).clone())))
            .cloned()
            .collect();
        for a in todo {
            log::info!("docker: {a}");
            if let Err(e) = self.open(Purpose::Action(a), now) {
                self.fail(format!("cannot connect for a network request: {e}"), now, events);
                return;
            }
        }
    }

    /// A request connection finished with a complete response.
    fn on_response(&mut self, purpose: Purpose, resp: Response, now: Instant, events: &mut Vec<Event>) {
        match purpose {
            Purpose::Version => match (resp.status, docker::negotiate(&resp.body)) {
                (200, Ok(v)) => {
                    self.version = Some(v);
                    self.sync = Some(Sync { pending: usize::MAX, found: Vec::new(), held_back: Vec::new() });
                    self.set_state(EngineState::Syncing, None, events);
                    // Subscribe first, then list: nothing can slip between the two.
                    let opened = self.open(Purpose::Events, now).and_then(|_| self.open(Purpose::List, now));
                    if let Err(e) = opened {
                        self.fail(format!("cannot connect: {e}"), now, events);
                    }
                }
                (200, Err(e)) => self.fail(e.to_string(), now, events),
                (code, _) => self.fail(format!("GET /version answered {code}"), now, events),
            },
            Purpose::List => match (resp.status, docker::parse_list(&resp.body)) {
                (200, Ok(ids)) => {
                    if let Some(sync) = &mut self.sync {
                        sync.pending = ids.len();
                    }
                    self.queue.extend(ids);
                    self.maybe_finish_sync(events);
                }
                (200, Err(e)) => self.fail(e.to_string(), now, events),
                (code, _) => self.fail(format!("GET /containers/json answered {code}"), now, events),
            },
            Purpose::Inspect(id) => {
                let result = match resp.status {
                    200 => match docker::parse_inspect(&resp.body) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            log::warn!("docker: container {id}: {e}");
                            None
                        }
                    },
                    404 => None, // gone already
                    code => {
                        log::warn!("docker: inspect {id} answered {code}");
                        None
                    }
                };
                match &mut self.sync {
                    Some(sync) => {
                        sync.pending = sync.pending.saturating_sub(1);
                        sync.found.extend(result);
                        self.maybe_finish_sync(events);
                    }
                    None => events.push(match result {
                        Some(c) => Event::ContainerUp(c),
                        None => Event::ContainerGone(id),
                    }),
                }
            }
            Purpose::Networks => match (resp.status, docker::parse_networks(&resp.body)) {
                (200, Ok(list)) => events.push(Event::DockerNetworks(list)),
                (200, Err(e)) => log::warn!("docker: {e}"),
                (code, _) => log::warn!("docker: GET /networks answered {code}"),
            },
            Purpose::Action(a) => {
                let error = match resp.status {
                    200..=299 => None,
                    code => Some(format!(
                        "{a}: the Engine answered {code}: {}",
                        docker::error_message(&resp.body)
                    )),
                };
                match &error {
                    Some(e) => {
                        log::warn!("docker: {e}");
                        self.failed.insert(a.clone(), now + ACTION_RETRY);
                    }
                    None => log::info!("docker: done: {a}"),
                }
                events.push(Event::DockerNetResult { action: a.to_string(), error });
                // What the Engine has now decides the next step.
                self.list_networks(now, events);
            }
            Purpose::Events => self.fail("the event stream ended".into(), now, events),
        }
    }

    fn maybe_finish_sync(&mut self, events: &mut Vec<Event>) {
        if self.sync.as_ref().is_none_or(|s| s.pending > 0) {
            return;
        }
        let Some(sync) = self.sync.take() else { return };
        log::info!("docker: synced, {} running container(s)", sync.found.iter().filter(|c| c.active).count());
        events.push(Event::DockerSnapshot(sync.found));
        self.backoff = BACKOFF_START;
        self.set_state(EngineState::Connected, None, events);
        self.list_networks(Instant::now(), events);
        // Network requests cut off by a lost connection are made again.
        self.pump_actions(Instant::now(), events);
        for e in sync.held_back {
            self.on_engine_event(e, events);
        }
    }

    /// Splits the decoded event stream into lines and handles each.
    fn take_event_lines(&mut self, body: Vec<u8>, events: &mut Vec<Event>) {
        if body.is_empty() {
            return;
        }
        self.event_line.extend_from_slice(&body);
        let seen_before = self.status.last_event_unix;
        while let Some(pos) = self.event_line.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.event_line.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.status.last_event_unix = Some(now_unix());
            match docker::parse_event(line) {
                Ok(e) => self.on_engine_event(e, events),
                Err(e) => log::warn!(
                    "docker: {e} (line skipped: {})",
                    String::from_utf8_lossy(&line[..line.len().min(120)])
                ),
            }
        }
        if self.status.last_event_unix != seen_before {
            events.push(Event::Engine(self.status.clone()));
        }
        if self.event_line.len() > MAX_EVENT_LINE {
            log::warn!("docker: event line over {MAX_EVENT_LINE} bytes skipped");
            self.event_line.clear();
        }
    }

    fn service(&mut self, idx: usize, now: Instant, events: &mut Vec<Event>) {
        let mut chunk = [0u8; 16 * 1024];
        let mut eof = false;
        let mut error: Option<String> = None;
        {
            let c = &mut self.conns[idx];
            if let Err(e) = flush(c) {
                error = Some(format!("write: {e}"));
            }
            for _ in 0..READ_BUDGET {
                if error.is_some() {
                    break;
                }
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        if let Err(e) = c.resp.feed(&chunk[..n]) {
                            error = Some(e.to_string());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => error = Some(e.to_string()),
                }
            }
            if eof && error.is_none() {
                if let Err(e) = c.resp.eof() {
                    error = Some(e.to_string());
                }
            }
        }
        let purpose = self.conns[idx].purpose.clone();
        if purpose == Purpose::Events {
            let c = &mut self.conns[idx];
            if c.resp.head_done() && c.resp.status != 200 {
                let code = c.resp.status;
                return self.fail(format!("GET /events answered {code}"), now, events);
            }
            let body = std::mem::take(&mut c.resp.body);
            self.take_event_lines(body, events);
            if let Some(e) = error {
                return self.fail(format!("event stream: {e}"), now, events);
            }
            if eof || self.conns.get(idx).is_some_and(|c| c.resp.is_done()) {
                return self.fail("the event stream ended".into(), now, events);
            }
            return;
        }
        if let Some(e) = error {
            return self.fail(format!("{purpose:?}: {e}"), now, events);
        }
        if self.conns[idx].resp.is_done() {
            let c = self.conns.swap_remove(idx);
            self.on_response(purpose, c.resp, now, events);
        }
    }
}

fn flush(c: &mut Conn) -> io::Result<()> {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Source for DockerSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        for c in &self.conns {
            let ev = if c.out.is_empty() { POLLIN } else { POLLIN | POLLOUT };
            out.push((c.stream.as_raw_fd(), ev));
        }
    }

    fn deadline(&self) -> Option<Instant> {
        // A failed network request still wanted is tried again when its wait ends.
        let retry = self.failed.iter().filter(|(a, _)| self.wanted.contains(a)).map(|(_, t)| *t).min();
        self.conns.iter().filter_map(|c| c.deadline).chain(self.retry_at).chain(retry).min()
    }

    fn settle(&mut self, events: &mut Vec<Event>) {
        events.append(&mut self.pending);
    }

    fn ready(&mut self, fd: RawFd, _revents: i16, now: Instant, events: &mut Vec<Event>) {
        if let Some(idx) = self.conns.iter().position(|c| c.stream.as_raw_fd() == fd) {
            self.service(idx, now, events);
            self.pump_queue(now, events);
        }
    }

    fn deliver(&mut self, msg: &Outgoing) {
        match msg {
            Outgoing::DockerSocket(socket) => self.reconfigure(socket.clone()),
            // A reload tries refused network requests again at once.
            Outgoing::Reloaded => self.failed.clear(),
            Outgoing::DockerNetActions(actions) => {
                self.wanted = actions.clone();
                let mut events = std::mem::take(&mut self.pending);
                self.pump_actions(Instant::now(), &mut events);
                self.pending = events;
            }
            _ => {}
        }
    }

    fn expired(&mut self, now: Instant, events: &mut Vec<Event>) {
        self.pump_actions(now, events);
        if self.retry_at.is_some_and(|t| t <= now) {
            self.status.reconnects += u64::from(self.status.state == EngineState::Disconnected);
            self.start(now, events);
            return;
        }
        if let Some(c) = self.conns.iter().find(|c| c.deadline.is_some_and(|d| d <= now)) {
            let why = format!("{:?}: no answer within {} s", c.purpose, REQUEST_TIMEOUT.as_secs());
            self.fail(why, now, events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_engine_is_retried_with_capped_backoff() {
        let mut s = DockerSource::new(Some(PathBuf::from("/nonexistent/docker.sock")));
        let mut events = Vec::new();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..12 {
            let at = s.deadline().expect("a retry is always scheduled");
            now = now.max(at);
            s.expired(now, &mut events);
            waits.push(s.deadline().unwrap() - now);
        }
        assert_eq!(waits[0], BACKOFF_START);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), BACKOFF_MAX);
        match events.last() {
            Some(Event::Engine(st)) => {
                assert_eq!(st.state, EngineState::Disconnected);
                assert!(st.error.as_deref().unwrap().contains("/nonexistent/docker.sock"));
                assert!(st.reconnects >= 10);
            }
            other => panic!("{other:?}"),
        }
        assert!(s.interests_len() == 0);
        s.deliver(&Outgoing::DockerSocket(None));
        assert_eq!(s.deadline(), None, "off: no timers at all");
    }

    impl DockerSource {
        fn interests_len(&self) -> usize {
            let mut v = Vec::new();
            self.interests(&mut v);
            v.len()
        }
    }
}
