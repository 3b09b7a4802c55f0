//! Control socket: a unix stream listener and non-blocking clients. A request line becomes
//! an `Event::Control`; the daemon's reply comes back through `deliver`.
//!
//! Limits keep a slow, idle or hostile client from hurting anyone else: lines of at most
//! 4 KiB; one request of a client in the daemon's hands at a time, and none taken while
//! 64 KiB of its replies wait unread (a client that pipelines faster than it reads is
//! throttled: its bytes stay in the kernel); at most 64 requests handed over per loop turn,
//! all clients together; at most 64 clients, the longest-idle one evicted when a new one
//! arrives at the limit; clients idle for 10 s dropped; a client that hung up is never answered.

use crate::event::Event;
use crate::event_loop::{Outgoing, Source};
use crate::sys::fd::{peer_cred, PeerCred};
use crate::sys::poll::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};
use crate::wire::control::{parse_request, reply_err, Line, LineBuffer, MAX_LINE};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const MAX_CLIENTS: usize = 64;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUDGET: usize = 16;
/// Requests of one client handed to the daemon and not answered yet.
const MAX_IN_FLIGHT: usize = 1;
/// No new request of a client is taken while this much of its output is unsent.
const OUTPUT_HIGH: usize = 64 << 10;
/// The socket is not read while this much unparsed input is buffered.
const INPUT_HIGH: usize = 2 * (MAX_LINE + 1);
/// Requests handed to the daemon per loop turn, all clients together.
const TURN_BUDGET: usize = 64;

#[derive(Debug)]
pub enum ControlError {
    AlreadyRunning {
        path: PathBuf,
        pid: Option<u32>,
    },
    /// Something other than a socket is at the socket path: it is not removed.
    NotASocket {
        path: PathBuf,
    },
    Lock {
        path: PathBuf,
        error: io::Error,
    },
    Bind {
        path: PathBuf,
        error: io::Error,
    },
    Permissions {
        path: PathBuf,
        error: io::Error,
    },
    UnknownGroup {
        group: String,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::AlreadyRunning { path, pid } => {
                write!(f, "control socket {}: another netmgrd is running", path.display())?;
                match pid {
                    Some(p) => write!(f, " (pid {p}); stop it first"),
                    None => write!(f, "; stop it first"),
                }
            }
            ControlError::NotASocket { path } => write!(
                f,
                "control socket {}: the path exists and is not a socket; not removing it (check control.socket)",
                path.display()
            ),
            ControlError::Lock { path, error } => write!(f, "lock file {}: {error}", path.display()),
            ControlError::Bind { path, error } => write!(f, "control socket {}: {error}", path.display()),
            ControlError::Permissions { path, error } => {
                write!(f, "control socket {}: cannot set mode/group: {error}", path.display())
            }
            ControlError::UnknownGroup { group } => write!(f, "control.group `{group}` is not in /etc/group"),
        }
    }
}

impl std::error::Error for ControlError {}

struct Client {
    stream: UnixStream,
    input: LineBuffer,
    output: Vec<u8>,
    idle_deadline: Instant,
    /// Close once the output is flushed (after an oversized line, a refusal, or EOF).
    closing: bool,
    /// The client shut its sending side: answer what it sent, then close.
    eof: bool,
    in_flight: usize,
    last_active: Instant,
}

pub struct ControlSource {
    listener: UnixListener,
    /// `<socket>.lock`, flocked for the life of the daemon: one instance per socket.
    _lock: std::fs::File,
    mode: u32,
    path: PathBuf,
    allowed_gid: Option<u32>,
    clients: BTreeMap<u64, Client>,
    next_id: u64,
    /// Requests this turn may still hand to the daemon.
    budget: usize,
}

/// Looks a group up in /etc/group (no NSS: routers keep groups there).
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.nth(1).and_then(|g| g.parse().ok())).flatten()
    })
}

fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        })
        .unwrap_or_default()
}

/// `<socket>.lock`, locked and holding our pid; `AlreadyRunning` when another instance has it.
fn take_lock(socket: &Path) -> Result<std::fs::File, ControlError> {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let lock_err = |error| ControlError::Lock { path: path.clone(), error };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_err)?;
    if !crate::sys::fd::try_lock_exclusive(&file).map_err(lock_err)? {
        let pid = std::fs::read_to_string(&path).ok().and_then(|p| p.trim().parse().ok());
        return Err(ControlError::AlreadyRunning { path: socket.to_path_buf(), pid });
    }
    file.set_len(0).map_err(lock_err)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
    Ok(file)
}

/// A socket left by a crashed instance goes (we hold the lock, so nobody serves it); anything
/// else at the path is never deleted.
fn remove_stale_socket(path: &Path) -> Result<(), ControlError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        Ok(_) => Err(ControlError::NotASocket { path: path.to_path_buf() }),
        Err(_) => Ok(()),
    }
}

/// A non-blocking listener at `path` with the configured mode and group.
fn listen(path: &Path, mode: u32, gid: Option<u32>) -> Result<UnixListener, ControlError> {
    let bind_err = |error| ControlError::Bind { path: path.to_path_buf(), error };
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let perm_err = |error| ControlError::Permissions { path: path.to_path_buf(), error };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(perm_err)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(perm_err)?;
    }
    Ok(listener)
}

impl ControlSource {
    /// Binds the socket again when someone deleted it (a `resync` asks for this): clients
    /// already connected keep their connections.
    fn ensure_socket(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok() {
            return;
        }
        match listen(&self.path, self.mode, self.allowed_gid) {
            Ok(l) => {
                log::warn!("control socket {} was deleted; bound it again", self.path.display());
                self.listener = l;
            }
            Err(e) => log::error!("{e}"),
        }
    }

    pub fn bind(path: &Path, mode: u32, group: Option<&str>) -> Result<ControlSource, ControlError> {
        let allowed_gid = match group {
            Some(g) => Some(group_id(g).ok_or_else(|| ControlError::UnknownGroup { group: g.to_string() })?),
            None => None,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let lock = take_lock(path)?;
        remove_stale_socket(path)?;
        let listener = listen(path, mode, allowed_gid)?;
        Ok(ControlSource {
            listener,
            _lock: lock,
            mode,
            path: path.to_path_buf(),
            allowed_gid,
            clients: BTreeMap::new(),
            next_id: 1,
            budget: TURN_BUDGET,
        })
    }

    fn authorized(&self, cred: &PeerCred) -> bool {
        cred.uid == 0
            || self.allowed_gid.is_some_and(|g| cred.gid == g || supplementary_groups(cred.pid).contains(&g))
    }

    fn accept_all(&mut self, now: Instant) {
        for _ in 0..READ_BUDGET {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("control: accept: {e}");
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let mut client = Client {
                stream,
                input: LineBuffer::default(),
                output: Vec::new(),
                idle_deadline: now + IDLE_TIMEOUT,
                closing: false,
                eof: false,
                in_flight: 0,
                last_active: now,
            };
            let cred = peer_cred(client.stream.as_raw_fd());
            if cred.as_ref().is_ok_and(|c| self.authorized(c)) && self.clients.len() >= MAX_CLIENTS {
                self.evict_idlest();
            }
            let refusal = match cred {
                _ if self.clients.len() >= MAX_CLIENTS => Some("too many clients; try again later"),
                Ok(cred) if self.authorized(&cred) => None,
                Ok(_) => Some("permission denied: root or the control group only"),
                Err(_) => Some("permission denied: cannot read peer credentials"),
            };
            if let Some(reason) = refusal {
                client.output.extend_from_slice(reply_err(reason).as_bytes());
                client.closing = true;
                // Best effort: a refused client gets one write, never a slot.
                let _ = client.stream.write(&client.output);
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.clients.insert(id, client);
        }
    }

    /// At the client limit: the client idle longest (nothing in flight, nothing to send)
    /// makes room, so a new `ctl` always gets in.
    fn evict_idlest(&mut self) {
        let idlest = self
            .clients
            .iter()
            .filter(|(_, c)| c.in_flight == 0 && c.output.is_empty())
            .min_by_key(|(_, c)| c.last_active)
            .map(|(id, _)| *id);
        if let Some(id) = idlest {
            self.clients.remove(&id);
            log::debug!("control: evicted idle client {id} to make room");
        }
    }

    fn read_client(&mut self, id: u64, now: Instant, events: &mut Vec<Event>) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        let mut chunk = [0u8; 4096];
        for _ in 0..READ_BUDGET {
            if c.eof || c.closing || c.input.len() >= INPUT_HIGH {
                break; // backpressure: the rest stays in the kernel's buffer
            }
            match c.stream.read(&mut chunk) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    c.idle_deadline = now + IDLE_TIMEOUT;
                    c.input.push(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // Gone: nobody to answer.
                    self.clients.remove(&id);
                    return;
                }
            }
        }
        self.pump(id, now, events);
    }

    /// Hands the client's complete lines to the daemon within its limits and the turn's.
    fn pump(&mut self, id: u64, now: Instant, events: &mut Vec<Event>) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        while !c.closing && c.in_flight < MAX_IN_FLIGHT && c.output.len() < OUTPUT_HIGH && self.budget > 0 {
            match c.input.next_line() {
                Some(Line::Complete(line)) => {
                    self.budget -= 1;
                    c.last_active = now;
                    match parse_request(&line) {
                        Ok(request) => {
                            c.in_flight += 1;
                            events.push(Event::Control { client: id, request });
                        }
                        Err(e) => c.output.extend_from_slice(reply_err(&e).as_bytes()),
                    }
                }
                Some(Line::TooLong) => {
                    c.output.extend_from_slice(reply_err("request line longer than 4096 bytes").as_bytes());
                    c.closing = true;
                }
                None => break,
            }
        }
        if c.eof && !c.input.has_line() && c.in_flight == 0 {
            c.closing = true;
        }
        self.flush(id, now);
    }

    /// Writes what the socket takes now; removes finished clients.
    fn flush(&mut self, id: u64, now: Instant) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        while !c.output.is_empty() {
            match c.stream.write(&c.output) {
                Ok(0) => break,
                Ok(n) => {
                    c.output.drain(..n);
                    // A client that reads is not idle, however long its replies are.
                    c.idle_deadline = now + IDLE_TIMEOUT;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.output.clear();
                    c.closing = true;
                    break;
                }
            }
        }
        if c.closing && c.output.is_empty() {
            self.clients.remove(&id);
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
}

impl Drop for ControlSource {
    fn drop(&mut self) {
        // Ours while the lock is held; only a socket is removed.
        let _ = remove_stale_socket(&self.path);
    }
}

impl Source for ControlSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        out.push((self.listener.as_raw_fd(), POLLIN));
        for c in self.clients.values() {
            let mut ev = 0;
            if !c.closing && !c.eof && c.input.len() < INPUT_HIGH {
                ev |= POLLIN;
            }
            if !c.output.is_empty() {
                ev |= POLLOUT;
            }
            out.push((c.stream.as_raw_fd(), ev));
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.clients.values().map(|c| c.idle_deadline).min()
    }

    fn ready(&mut self, fd: RawFd, revents: i16, now: Instant, events: &mut Vec<Event>) {
        if fd == self.listener.as_raw_fd() {
            self.accept_all(now);
            return;
        }
        let Some(id) = self.clients.iter().find(|(_, c)| c.stream.as_raw_fd() == fd).map(|(id, _)| *id)
        else {
            return;
        };
        // POLLHUP: the peer closed both directions. It cannot read a reply: drop what it
        // sent unanswered (10,000 connect-send-close clients cost nothing).
        if revents & (POLLNVAL | POLLHUP | POLLERR) != 0 {
            self.clients.remove(&id);
            return;
        }
        if revents & POLLIN != 0 {
            self.read_client(id, now, events);
        }
        if revents & POLLOUT != 0 {
            self.flush(id, now);
            self.pump(id, now, events);
        }
    }

    fn expired(&mut self, now: Instant, _events: &mut Vec<Event>) {
        let before = self.clients.len();
        self.clients.retain(|_, c| c.idle_deadline > now);
        let dropped = before - self.clients.len();
        if dropped > 0 {
            log::debug!("control: dropped {dropped} idle client(s)");
        }
    }

    /// A new turn's budget, and the lines that waited for it (or for replies) handed over.
    fn settle(&mut self, events: &mut Vec<Event>) {
        self.budget = TURN_BUDGET;
        let now = Instant::now();
        let waiting: Vec<u64> =
            self.clients.iter().filter(|(_, c)| c.input.has_line() || c.eof).map(|(id, _)| *id).collect();
        for id in waiting {
            self.pump(id, now, events);
        }
    }

    fn deliver(&mut self, msg: &Outgoing) {
        match msg {
            Outgoing::Reply { client, line } => {
                if let Some(c) = self.clients.get_mut(client) {
                    c.in_flight = c.in_flight.saturating_sub(1);
                    c.output.extend_from_slice(line.as_bytes());
                    self.flush(*client, Instant::now());
                }
            }
            Outgoing::NetResync | Outgoing::Reloaded => self.ensure_socket(),
            _ => {}
        }
    }
}
