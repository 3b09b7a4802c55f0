//! Journal source (`cgroups.watch: journal`): a `journalctl --follow --output=json` child,
//! read through a non-blocking pipe, tells which units started or stopped; each names a unit
//! whose cgroups are looked at again in the cgroup tree (the journal is the trigger, the tree
//! the truth, so a forged or stale message changes nothing). The child is respawned with
//! backoff when it ends, and a full scan follows each (re)start so nothing logged while it was
//! down is missed. A stop message is followed by a few re-looks, because systemd may log it a
//! moment before the cgroup directory is removed.

use crate::event::{CgroupFollow, Event};
use crate::event_loop::{Outgoing, Source};
use crate::sources::cgroups::scan_tree;
use crate::sys::poll::POLLIN;
use crate::sys::spawn::{kill, spawn_with_pipes};
use crate::wire::journal::{parse_line, Lines, UnitChange, FIELDS, MESSAGE_IDS};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const READ_BUDGET: usize = 16;
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A child that ran this long before ending starts the backoff again from the first step.
const STABLE: Duration = Duration::from_secs(60);
/// Re-looks after a stop message: 250 ms, 500 ms, 1 s, 2 s.
const RELOOK_FIRST: Duration = Duration::from_millis(250);
const RELOOKS: u32 = 4;
/// journalctl's stderr lines logged per child, at most.
const STDERR_LINES: u32 = 20;

struct Child {
    pid: i32,
    stdout: File,
    stderr: Option<File>,
    since: Instant,
    stderr_lines: u32,
}

pub struct JournalSource {
    root: PathBuf,
    program: String,
    child: Option<Child>,
    restart_at: Option<Instant>,
    backoff: Duration,
    lines: Lines,
    err_lines: Lines,
    /// Units that stopped, with the time of the next look and the looks left.
    relook: BTreeMap<String, (Instant, u32)>,
    pending: Vec<Event>,
    follow: CgroupFollow,
    buf: Vec<u8>,
}

/// `--since` one second back: with the full scan after each start, nothing falls in between.
fn since_arg() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("--since=@{}", now.saturating_sub(1))
}

/// journalctl's arguments: follow, JSON, only the fields and messages netmgrd reads.
pub fn journalctl_args() -> Vec<String> {
    let mut args = vec![
        "--follow".to_string(),
        "--output=json".to_string(),
        format!("--output-fields={FIELDS}"),
        "--no-pager".to_string(),
        since_arg(),
    ];
    // Several matches on one field are ORed.
    args.extend(MESSAGE_IDS.iter().map(|(id, _)| format!("MESSAGE_ID={id}")));
    args
}

impl JournalSource {
    /// Starts `program` (journalctl, found in PATH) and scans the tree once.
    pub fn open(root: &Path, program: &str) -> JournalSource {
        let mut s = JournalSource {
            root: root.to_path_buf(),
            program: program.to_string(),
            child: None,
            restart_at: None,
            backoff: BACKOFF_FIRST,
            lines: Lines::default(),
            err_lines: Lines::default(),
            relook: BTreeMap::new(),
            pending: Vec::new(),
            follow: CgroupFollow {
                watch: "journal".into(),
                root: root.display().to_string(),
                ..CgroupFollow::default()
            },
            buf: vec![0u8; 64 * 1024],
        };
        s.start(Instant::now());
        s
    }

    fn start(&mut self, now: Instant) {
        self.restart_at = None;
        match spawn_with_pipes(&self.program, &journalctl_args(), &[]) {
            Ok(c) => {
                log::info!("cgroups: following unit changes through {} (pid {})", self.program, c.pid);
                self.child = Some(Child {
                    pid: c.pid,
                    stdout: File::from(c.stdout),
                    stderr: Some(File::from(c.stderr)),
                    since: now,
                    stderr_lines: 0,
                });
                self.follow.error = None;
            }
            Err(e) => self.gone(now, format!("cannot start {}: {e}", self.program)),
        }
        self.full_scan();
    }

    /// The child ended or cannot start: try again after the backoff.
    fn gone(&mut self, now: Instant, why: String) {
        if let Some(c) = self.child.take() {
            // It closed its output; make sure it is not left behind.
            let _ = kill(c.pid, libc::SIGTERM);
            if now.duration_since(c.since) >= STABLE {
                self.backoff = BACKOFF_FIRST;
            }
        }
        self.lines.reset();
        self.err_lines.reset();
        log::warn!("cgroups: {why}; starting it again in {:?}", self.backoff);
        self.follow.restarts += 1;
        self.follow.error = Some(why);
        self.restart_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.pending.push(Event::CgroupFollow(self.follow.clone()));
    }

    fn full_scan(&mut self) {
        self.pending.retain(|e| !matches!(e, Event::CgroupSnapshot(_) | Event::CgroupFollow(_)));
        match scan_tree(&self.root, |_| true) {
            Some(found) => {
                self.pending.push(Event::CgroupFollow(self.follow.clone()));
                self.pending.push(Event::CgroupSnapshot(found));
            }
            None => {
                // Nothing known is not "no cgroups": the sets stay as they are.
                log::error!("cgroups: cannot read {}; cgroup sets are left as they are", self.root.display());
                self.follow.error = Some(format!("cannot read {}", self.root.display()));
                self.pending.push(Event::CgroupFollow(self.follow.clone()));
            }
        }
    }

    /// A fresh look at the cgroups of `units` (and everything below them).
    fn look(&self, units: BTreeSet<String>, events: &mut Vec<Event>) {
        if units.is_empty() {
            return;
        }
        let Some(found) = scan_tree(&self.root, |rel| rel.split('/').any(|c| units.contains(c))) else {
            log::warn!("cgroups: cannot read {}", self.root.display());
            return;
        };
        events.push(Event::CgroupUnits { units: units.into_iter().collect(), found });
    }

    fn read_stdout(&mut self, now: Instant, events: &mut Vec<Event>) {
        let Some(child) = &self.child else { return };
        let mut named = BTreeSet::new();
        let mut closed = None;
        let bad_before = self.follow.bad_lines;
        for _ in 0..READ_BUDGET {
            match (&child.stdout).read(&mut self.buf) {
                Ok(0) => {
                    closed = Some("journalctl ended".to_string());
                    break;
                }
                Ok(n) => {
                    let (relook, follow) = (&mut self.relook, &mut self.follow);
                    self.lines.feed(&self.buf[..n], |line| match parse_line(line) {
                        Ok(Some(ev)) => {
                            if ev.change == UnitChange::Stopped {
                                relook.insert(ev.unit.clone(), (now + RELOOK_FIRST, RELOOKS));
                            }
                            named.insert(ev.unit);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            follow.bad_lines += 1;
                            if follow.bad_lines <= 10 {
                                log::warn!("cgroups: {e}");
                            }
                        }
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    closed = Some(format!("reading journalctl: {e}"));
                    break;
                }
            }
        }
        self.follow.bad_lines += std::mem::take(&mut self.lines.overlong);
        if self.follow.bad_lines != bad_before {
            events.push(Event::CgroupFollow(self.follow.clone()));
        }
        self.look(named, events);
        if let Some(why) = closed {
            self.gone(now, why);
            events.append(&mut self.pending);
        }
    }

    /// journalctl's complaints go to the log, a few lines per child.
    fn read_stderr(&mut self) {
        let Some(child) = &mut self.child else { return };
        let Some(err) = &child.stderr else { return };
        let mut lines = Vec::new();
        let mut eof = false;
        for _ in 0..READ_BUDGET {
            match (&*err).read(&mut self.buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self
                    .err_lines
                    .feed(&self.buf[..n], |l| lines.push(String::from_utf8_lossy(l).into_owned())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        for l in lines {
            child.stderr_lines += 1;
            if child.stderr_lines <= STDERR_LINES {
                log::warn!("cgroups: journalctl: {l}");
            }
        }
        if eof {
            child.stderr = None;
        }
    }
}

impl Source for JournalSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        if let Some(c) = &self.child {
            out.push((c.stdout.as_raw_fd(), POLLIN));
            if let Some(e) = &c.stderr {
                out.push((e.as_raw_fd(), POLLIN));
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let relook = self.relook.values().map(|(at, _)| *at).min();
        [self.restart_at, relook].into_iter().flatten().min()
    }

    fn ready(&mut self, fd: RawFd, _revents: i16, now: Instant, events: &mut Vec<Event>) {
        let Some(child) = &self.child else { return };
        if fd == child.stdout.as_raw_fd() {
            self.read_stdout(now, events);
        } else {
            self.read_stderr();
        }
    }

    fn expired(&mut self, now: Instant, events: &mut Vec<Event>) {
        if self.restart_at.is_some_and(|at| at <= now) {
            self.start(now);
            events.append(&mut self.pending);
        }
        let due: BTreeSet<String> =
            self.relook.iter().filter(|(_, (at, _))| *at <= now).map(|(u, _)| u.clone()).collect();
        for unit in &due {
            if let Some((at, left)) = self.relook.get_mut(unit) {
                *left -= 1;
                if *left == 0 {
                    self.relook.remove(unit);
                } else {
                    // Doubling: 250 ms, 500 ms, 1 s, 2 s after the message.
                    *at = now + RELOOK_FIRST * 2u32.pow(RELOOKS - *left);
                }
            }
        }
        self.look(due, events);
    }

    fn settle(&mut self, events: &mut Vec<Event>) {
        events.append(&mut self.pending);
    }

    fn deliver(&mut self, msg: &Outgoing) {
        match msg {
            Outgoing::NetResync => self.full_scan(),
            Outgoing::ChildExited { pid, status } => {
                if self.child.as_ref().is_some_and(|c| c.pid == *pid) {
                    // Exited while its pipe is still open (a grandchild holds it): gone all the same.
                    self.gone(Instant::now(), format!("journalctl exited (status {status:#x})"));
                } else {
                    log::debug!("child {pid} exited (status {status:#x})");
                }
            }
            _ => {}
        }
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = kill(c.pid, libc::SIGTERM);
        }
    }
}
