//! Cgroup source: an inotify watch on every directory of the cgroup2 tree, so cgroups that
//! appear (a service starts, a scope is created) and vanish are seen at once, with their ids
//! (the directory's inode number, what `socket cgroupv2` compares). A full scan at start, on
//! `resync` and after an inotify queue overflow. The number of watches is capped.

use crate::event::{CgroupFollow, Event};
use crate::event_loop::{Outgoing, Source};
use crate::sys::inotify;
use crate::sys::poll::POLLIN;
use crate::wire::inotify::{
    parse, IN_CREATE, IN_DELETE, IN_IGNORED, IN_ISDIR, IN_MOVED_FROM, IN_MOVED_TO, IN_Q_OVERFLOW,
};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Watches at most (one per cgroup directory): far beyond a router's cgroup tree.
pub const MAX_WATCHES: usize = 16_384;
const WATCH_MASK: u32 = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
const READ_BUDGET: usize = 16;

pub struct CgroupSource {
    fd: OwnedFd,
    root: PathBuf,
    /// Watch descriptor -> directory (relative to the root; "" is the root).
    watches: BTreeMap<i32, String>,
    /// Events waiting for the end of the turn (the start-up snapshot).
    pending: Vec<Event>,
    buf: Vec<u8>,
    cap_reported: bool,
}

/// The cgroup2 mount point from /proc/self/mounts.
pub fn find_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

/// Walks the tree below `root/start` depth first, calling `visit(relative path, full path)` on
/// each directory; `visit` says whether to go below it (false: skip its children). At most
/// `MAX_WATCHES` directories.
pub fn walk(root: &Path, start: &str, mut visit: impl FnMut(&str, &Path) -> bool) {
    let mut stack = vec![start.to_string()];
    let mut visited = 0usize;
    while let Some(dir) = stack.pop() {
        visited += 1;
        if visited > MAX_WATCHES {
            log::error!(
                "cgroups: more than {MAX_WATCHES} cgroups under {}; the rest are not looked at",
                root.display()
            );
            return;
        }
        let full = root.join(&dir);
        if !visit(&dir, &full) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&full) else { continue };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(join(&dir, &e.file_name().to_string_lossy()));
            }
        }
    }
}

/// The cgroup id of a directory (its inode number).
fn id_of(full: &Path) -> Option<u64> {
    std::fs::metadata(full).ok().map(|m| m.ino())
}

/// Every cgroup below `root` whose path `keep` accepts, with its id; `None` when the root
/// itself cannot be read (nothing known is not "no cgroups").
pub fn scan_tree(root: &Path, keep: impl Fn(&str) -> bool) -> Option<Vec<(String, u64)>> {
    std::fs::read_dir(root).ok()?;
    let mut found = Vec::new();
    walk(root, "", |dir, full| {
        if !dir.is_empty() && keep(dir) {
            found.extend(id_of(full).map(|id| (dir.to_string(), id)));
        }
        true
    });
    Some(found)
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl CgroupSource {
    pub fn open(root: &Path) -> io::Result<CgroupSource> {
        let mut s = CgroupSource {
            fd: inotify::init()?,
            root: root.to_path_buf(),
            watches: BTreeMap::new(),
            pending: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            cap_reported: false,
        };
        s.rescan();
        Ok(s)
    }

    /// Watches `rel` and everything below it; returns every cgroup found with its id.
    fn scan(&mut self, rel: &str, found: &mut Vec<(String, u64)>) {
        let root = self.root.clone();
        walk(&root, rel, |dir, full| {
            if self.watches.len() >= MAX_WATCHES {
                if !self.cap_reported {
                    log::error!(
                        "cgroups: {MAX_WATCHES} directories watched; cgroups below {} are not followed",
                        full.display()
                    );
                    self.cap_reported = true;
                }
                return false;
            }
            // Watch first, then list: a child created in between is seen either way.
            match inotify::add_watch(&self.fd, full, WATCH_MASK) {
                Ok(wd) => {
                    self.watches.insert(wd, dir.to_string());
                }
                Err(e) => {
                    log::debug!("cgroups: cannot watch {}: {e}", full.display());
                    return false;
                }
            }
            if !dir.is_empty() {
                found.extend(id_of(full).map(|id| (dir.to_string(), id)));
            }
            true
        });
    }

    fn rescan(&mut self) {
        // A fresh inotify fd: closing the old one drops all its watches at once.
        self.watches.clear();
        self.fd = match inotify::init() {
            Ok(fd) => fd,
            Err(e) => {
                log::error!("cgroups: inotify: {e}");
                return;
            }
        };
        self.cap_reported = false;
        let mut found = Vec::new();
        self.scan("", &mut found);
        self.pending.retain(|e| !matches!(e, Event::CgroupSnapshot(_) | Event::CgroupFollow(_)));
        if self.watches.is_empty() {
            // Nothing known is not "no cgroups": leave the sets alone rather than empty them.
            log::error!("cgroups: cannot watch {}; cgroup sets are left as they are", self.root.display());
            self.pending.push(self.follow(Some(format!("cannot watch {}", self.root.display()))));
            return;
        }
        let error = self
            .cap_reported
            .then(|| format!("{MAX_WATCHES} directories watched; deeper cgroups are not followed"));
        self.pending.push(self.follow(error));
        self.pending.push(Event::CgroupSnapshot(found));
    }

    fn follow(&self, error: Option<String>) -> Event {
        Event::CgroupFollow(CgroupFollow {
            watch: "inotify".into(),
            root: self.root.display().to_string(),
            error,
            ..CgroupFollow::default()
        })
    }
}

impl Source for CgroupSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        out.push((self.fd.as_raw_fd(), POLLIN));
    }

    fn ready(&mut self, _fd: RawFd, _revents: i16, _now: Instant, events: &mut Vec<Event>) {
        for _ in 0..READ_BUDGET {
            let n = match inotify::read(&self.fd, &mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("cgroups: inotify read: {e}");
                    break;
                }
            };
            for ev in parse(&self.buf[..n]) {
                if ev.mask & IN_Q_OVERFLOW != 0 {
                    log::warn!("cgroups: inotify queue overflowed; scanning again");
                    self.rescan();
                    events.append(&mut self.pending);
                    return;
                }
                if ev.mask & IN_IGNORED != 0 {
                    self.watches.remove(&ev.wd);
                    continue;
                }
                let Some(dir) = self.watches.get(&ev.wd).cloned() else { continue };
                if ev.mask & IN_ISDIR == 0 {
                    continue;
                }
                let path = join(&dir, &ev.name);
                if ev.mask & (IN_CREATE | IN_MOVED_TO) != 0 {
                    let mut found = Vec::new();
                    self.scan(&path, &mut found);
                    events.extend(found.into_iter().map(|(path, id)| Event::CgroupAdded { path, id }));
                } else if ev.mask & (IN_DELETE | IN_MOVED_FROM) != 0 {
                    events.push(Event::CgroupRemoved { path });
                }
            }
        }
    }

    fn settle(&mut self, events: &mut Vec<Event>) {
        events.append(&mut self.pending);
    }

    fn deliver(&mut self, msg: &Outgoing) {
        if *msg == Outgoing::NetResync {
            self.rescan();
        }
    }
}
