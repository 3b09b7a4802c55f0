//! Hook scripts: executable files in `DIR/<state>.d/` run in name order when a link enters
//! that state (`manager.d` when the best state over all links changes). For one link, one
//! script at a time, in event order; a state that arrives while a script runs waits, and only
//! the newest waiting state runs next (the rest of a superseded state's scripts are skipped),
//! so a flapping link never forks a process per flap. At most `max_parallel` scripts run at
//! once. Output goes to the log line by line, capped per script; a script past its timeout
//! gets SIGTERM (its whole process group), SIGKILL 5 s later. A script is done when it is
//! reaped, not when its pipes close: a hook that leaves a daemon behind holding them is done
//! when it exits.

use crate::config::HooksConfig;
use crate::event::{Event, HookRun};
use crate::event_loop::{Outgoing, Source};
use crate::link_state::Transition;
use crate::sys::poll::POLLIN;
use crate::sys::spawn::{kill, spawn_in_group};
use crate::wire::journal::Lines;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KILL_AFTER: Duration = Duration::from_secs(5);
/// Output lines logged per script; the rest is read and counted, not logged.
const MAX_LOGGED_LINES: usize = 200;
const READ_BUDGET: usize = 16;

/// The scripts of one state for one link, still to run.
struct Batch {
    t: Transition,
    scripts: VecDeque<PathBuf>,
}

/// A script that cannot be started is tried this many times, this far apart.
const SPAWN_TRIES: u32 = 5;
const SPAWN_RETRY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct LinkQueue {
    /// The newest state waiting (older waiting ones were replaced: coalescing).
    next: Option<Transition>,
    current: Option<Batch>,
    running: bool,
    queued: bool,
    /// Start failures of the current script, and when to try it again.
    failures: u32,
    retry_at: Option<Instant>,
}

struct Running {
    key: String,
    link: Option<String>,
    script: PathBuf,
    state: String,
    pid: i32,
    stdout: Option<File>,
    stderr: Option<File>,
    lines: Lines,
    logged: usize,
    dropped_lines: u64,
    started: Instant,
    term_at: Instant,
    kill_at: Option<Instant>,
    timed_out: bool,
}

pub struct HookRunner {
    config: Option<HooksConfig>,
    dir_warned: bool,
    links: BTreeMap<String, LinkQueue>,
    /// Links with work, waiting for a slot, in arrival order.
    order: VecDeque<String>,
    running: Vec<Running>,
    pending: Vec<Event>,
    buf: Vec<u8>,
}

/// Executable regular files of `dir`, by name.
fn scripts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// One queue per link for its states, one for its route changes (so neither replaces the
/// other while waiting), one for the manager.
fn key_of(t: &Transition) -> String {
    let link = t.link.clone().unwrap_or_default();
    if t.routes_changed {
        format!("{link}#routes")
    } else {
        link
    }
}

impl HookRunner {
    pub fn new(config: Option<HooksConfig>) -> HookRunner {
        HookRunner {
            config,
            dir_warned: false,
            links: BTreeMap::new(),
            order: VecDeque::new(),
            running: Vec::new(),
            pending: Vec::new(),
            buf: vec![0u8; 64 * 1024],
        }
    }

    fn enqueue(&mut self, t: Transition) {
        let Some(cfg) = &self.config else { return };
        if !cfg.dir.is_dir() {
            if !self.dir_warned {
                log::warn!("hooks.dir {} is missing or not a directory: no hooks run", cfg.dir.display());
                self.dir_warned = true;
            }
            return;
        }
        self.dir_warned = false;
        let key = key_of(&t);
        let q = self.links.entry(key.clone()).or_default();
        q.next = Some(t);
        if !q.running && !q.queued {
            q.queued = true;
            self.order.push_back(key);
        }
    }

    /// Starts scripts while there are slots and links with work.
    fn schedule(&mut self, now: Instant) {
        let Some(cfg) = self.config.clone() else { return };
        let mut rounds = self.order.len();
        while self.running.len() < cfg.max_parallel && rounds > 0 {
            rounds -= 1;
            let Some(key) = self.order.pop_front() else { break };
            let Some(q) = self.links.get_mut(&key) else { continue };
            q.queued = false;
            // A newer state replaces the rest of the current one.
            if let Some(t) = q.next.take() {
                let dir = cfg.dir.join(t.dir_name());
                q.current = Some(Batch { scripts: scripts(&dir).into(), t });
            }
            let Some(batch) = &mut q.current else { continue };
            let Some(script) = batch.scripts.pop_front() else {
                q.current = None;
                continue;
            };
            let t = batch.t.clone();
            match Self::start(&cfg, &key, &t, &script, now) {
                Some(r) => {
                    if batch.scripts.is_empty() {
                        q.current = None;
                    }
                    q.failures = 0;
                    q.running = true;
                    self.running.push(r);
                }
                None if q.failures < SPAWN_TRIES => {
                    // A fork or exec that failed (EAGAIN, ETXTBSY under load): the same script
                    // again a moment later, so a link's newest state is never lost.
                    batch.scripts.push_front(script);
                    q.failures += 1;
                    q.retry_at = Some(now + SPAWN_RETRY);
                }
                None => {
                    log::warn!("hook {}: not started after {SPAWN_TRIES} tries; skipped", script.display());
                    q.failures = 0;
                    if batch.scripts.is_empty() {
                        q.current = None;
                    }
                    if q.current.is_some() || q.next.is_some() {
                        q.queued = true;
                        self.order.push_back(key);
                        rounds += 1;
                    }
                }
            }
        }
    }

    fn start(cfg: &HooksConfig, key: &str, t: &Transition, script: &Path, now: Instant) -> Option<Running> {
        let index = t.index.to_string();
        let old = t.old_state.map_or(String::new(), |s| s.name().to_string());
        let addresses = t.addresses.join(" ");
        let routes = t.routes.join(", ");
        let zone = t.zone.clone().unwrap_or_default();
        let json = if cfg.emit_json { serde_json::to_string(t).unwrap_or_default() } else { String::new() };
        let mut env = vec![
            ("LINK", t.link.as_deref().unwrap_or("")),
            ("LINKINDEX", index.as_str()),
            ("STATE", t.state.name()),
            ("OLD_STATE", old.as_str()),
            ("ZONE", zone.as_str()),
            ("ADDRESSES", addresses.as_str()),
            ("ROUTES", routes.as_str()),
        ];
        if cfg.emit_json {
            env.push(("JSON", json.as_str()));
        }
        let no_args: [&str; 0] = [];
        match spawn_in_group(script, &no_args, &env) {
            Ok(s) => {
                log::info!(
                    "hook {} for {} ({}) started, pid {}",
                    script.display(),
                    t.link.as_deref().unwrap_or("manager"),
                    t.state,
                    s.pid
                );
                Some(Running {
                    key: key.to_string(),
                    link: t.link.clone(),
                    script: script.to_path_buf(),
                    state: t.state.name().to_string(),
                    pid: s.pid,
                    stdout: Some(File::from(s.stdout)),
                    stderr: Some(File::from(s.stderr)),
                    lines: Lines::default(),
                    logged: 0,
                    dropped_lines: 0,
                    started: now,
                    term_at: now + cfg.timeout.0,
                    kill_at: None,
                    timed_out: false,
                })
            }
            Err(e) => {
                log::warn!("hook {}: cannot start: {e}", script.display());
                None
            }
        }
    }

    /// Reads what a script wrote; false at end of file.
    fn read_output(r: &mut Running, which_stdout: bool, buf: &mut [u8]) -> bool {
        let file = if which_stdout { &r.stdout } else { &r.stderr };
        let Some(f) = file else { return false };
        for _ in 0..READ_BUDGET {
            match (&*f).read(buf) {
                Ok(0) => return false,
                Ok(n) => {
                    let name =
                        r.script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let (logged, dropped) = (&mut r.logged, &mut r.dropped_lines);
                    r.lines.feed(&buf[..n], |l| {
                        if *logged < MAX_LOGGED_LINES {
                            *logged += 1;
                            log::info!("hook {name}: {}", String::from_utf8_lossy(l));
                        } else {
                            *dropped += 1;
                        }
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
        true
    }

    fn finished(&mut self, pos: usize, status: i32, now: Instant) {
        let mut r = self.running.swap_remove(pos);
        // What is already in the pipes; a daemon the script left behind may hold them open.
        let mut buf = std::mem::take(&mut self.buf);
        Self::read_output(&mut r, true, &mut buf);
        Self::read_output(&mut r, false, &mut buf);
        self.buf = buf;
        let (exit, signal) = if libc::WIFEXITED(status) {
            (Some(libc::WEXITSTATUS(status)), None)
        } else if libc::WIFSIGNALED(status) {
            (None, Some(libc::WTERMSIG(status)))
        } else {
            (None, None)
        };
        let run = HookRun {
            script: r.script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            state: r.state.clone(),
            exit,
            signal,
            duration_ms: now.duration_since(r.started).as_millis() as u64,
            timed_out: r.timed_out,
        };
        if r.dropped_lines > 0 || r.lines.overlong > 0 {
            log::info!(
                "hook {}: {} more output line(s) not logged ({} over-long)",
                run.script,
                r.dropped_lines + r.lines.overlong,
                r.lines.overlong
            );
        }
        log::info!(
            "hook {} finished: exit {:?}, signal {:?}, {} ms",
            run.script,
            exit,
            signal,
            run.duration_ms
        );
        self.pending.push(Event::HookFinished { link: r.link.clone(), run });
        if let Some(q) = self.links.get_mut(&r.key) {
            q.running = false;
            if (q.current.is_some() || q.next.is_some()) && !q.queued {
                q.queued = true;
                self.order.push_back(r.key.clone());
            }
        }
        self.schedule(now);
    }
}

impl Source for HookRunner {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        for r in &self.running {
            for f in [&r.stdout, &r.stderr].into_iter().flatten() {
                out.push((f.as_raw_fd(), POLLIN));
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let retry = self.links.values().filter_map(|q| q.retry_at).min();
        self.running.iter().map(|r| r.kill_at.unwrap_or(r.term_at)).chain(retry).min()
    }

    fn ready(&mut self, fd: RawFd, _revents: i16, _now: Instant, _events: &mut Vec<Event>) {
        let mut buf = std::mem::take(&mut self.buf);
        for r in &mut self.running {
            if r.stdout.as_ref().is_some_and(|f| f.as_raw_fd() == fd) && !Self::read_output(r, true, &mut buf)
            {
                r.stdout = None;
            } else if r.stderr.as_ref().is_some_and(|f| f.as_raw_fd() == fd)
                && !Self::read_output(r, false, &mut buf)
            {
                r.stderr = None;
            }
        }
        self.buf = buf;
    }

    fn expired(&mut self, now: Instant, _events: &mut Vec<Event>) {
        let due: Vec<String> = self
            .links
            .iter_mut()
            .filter(|(_, q)| q.retry_at.is_some_and(|t| t <= now))
            .map(|(k, q)| {
                q.retry_at = None;
                k.clone()
            })
            .collect();
        for key in due {
            if let Some(q) = self.links.get_mut(&key) {
                if !q.running && !q.queued {
                    q.queued = true;
                    self.order.push_back(key);
                }
            }
        }
        self.schedule(now);
        for r in &mut self.running {
            if let Some(at) = r.kill_at {
                if at <= now {
                    log::warn!("hook {} ignored SIGTERM for {KILL_AFTER:?}: SIGKILL", r.script.display());
                    let _ = kill(-r.pid, libc::SIGKILL);
                    r.kill_at = Some(now + Duration::from_secs(3600)); // sent; wait for the reap
                }
            } else if r.term_at <= now {
                log::warn!("hook {} ran past its timeout: SIGTERM", r.script.display());
                let _ = kill(-r.pid, libc::SIGTERM);
                r.timed_out = true;
                r.kill_at = Some(now + KILL_AFTER);
            }
        }
    }

    fn settle(&mut self, events: &mut Vec<Event>) {
        events.append(&mut self.pending);
    }

    fn deliver(&mut self, msg: &Outgoing) {
        let now = Instant::now();
        match msg {
            Outgoing::LinkStates(ts) => {
                // One at a time: a link with nothing running starts the first state at once,
                // and only later ones coalesce.
                for t in ts {
                    self.enqueue(t.clone());
                    self.schedule(now);
                }
            }
            Outgoing::ChildExited { pid, status } => {
                if let Some(pos) = self.running.iter().position(|r| r.pid == *pid) {
                    self.finished(pos, *status, now);
                }
            }
            Outgoing::Hooks(cfg) => {
                // Running scripts finish; what waits runs with the new settings.
                self.config = cfg.clone();
                self.dir_warned = false;
                if self.config.is_none() {
                    self.links.clear();
                    self.order.clear();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link_state::LinkState;

    #[test]
    fn only_executable_files_run_in_name_order() {
        let dir = std::env::temp_dir().join(format!("netmgrd-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (name, mode) in [("20-b", 0o755), ("10-a", 0o700), ("30-plain", 0o644)] {
            std::fs::write(dir.join(name), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        assert_eq!(scripts(&dir), vec![dir.join("10-a"), dir.join("20-b")]);
        assert!(scripts(&dir.join("missing")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_script_that_cannot_start_is_tried_again_then_skipped() {
        let dir = std::env::temp_dir().join(format!("netmgrd-hooks-retry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("carrier.d")).unwrap();
        let script = dir.join("carrier.d/10-broken");
        std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut r = HookRunner::new(Some(HooksConfig { dir: dir.clone(), ..HooksConfig::default() }));
        let t = Transition {
            link: Some("eth1".into()),
            index: 3,
            state: LinkState::Carrier,
            old_state: None,
            zone: None,
            addresses: vec![],
            routes: vec![],
            routes_changed: false,
        };
        r.deliver(&Outgoing::LinkStates(vec![t]));
        assert!(r.running.is_empty());
        assert_eq!(r.links["eth1"].failures, 1);
        let mut at = Instant::now();
        let mut events = Vec::new();
        for tries in 2..=SPAWN_TRIES {
            at = r.deadline().expect("a retry is due");
            r.expired(at, &mut events);
            assert_eq!(r.links["eth1"].failures, tries);
        }
        r.expired(r.deadline().unwrap_or(at), &mut events);
        assert_eq!(r.links["eth1"].failures, 0, "skipped after {SPAWN_TRIES} tries");
        assert!(r.deadline().is_none(), "nothing left to do: no timer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_hooks_dir_runs_nothing_and_newer_states_replace_waiting_ones() {
        let cfg = HooksConfig { dir: PathBuf::from("/nonexistent/netmgrd-hooks"), ..HooksConfig::default() };
        let mut r = HookRunner::new(Some(cfg));
        let t = |state| Transition {
            link: Some("eth1".into()),
            index: 3,
            state,
            old_state: None,
            zone: None,
            addresses: vec![],
            routes: vec![],
            routes_changed: false,
        };
        r.deliver(&Outgoing::LinkStates(vec![t(LinkState::Carrier)]));
        assert!(r.running.is_empty() && r.links.is_empty() && r.dir_warned);
        // With a directory, while nothing can run (no slot), later states coalesce.
        let dir = std::env::temp_dir();
        r.config = Some(HooksConfig { dir, max_parallel: 1, ..HooksConfig::default() });
        r.enqueue(t(LinkState::Carrier));
        r.enqueue(t(LinkState::Routable));
        r.enqueue(t(LinkState::Off));
        assert_eq!(r.order.len(), 1);
        assert_eq!(r.links["eth1"].next.as_ref().map(|t| t.state), Some(LinkState::Off));
    }
}
