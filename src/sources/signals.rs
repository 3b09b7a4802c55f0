//! Signals through signal-hook's self-pipe: the handler only writes a byte; the loop reads
//! which flags were raised. HUP reloads, TERM/INT stop; on CHLD every exited child is reaped
//! and reported with its status (`Event::ChildExited`); USR1 logs a state summary; PIPE, USR2
//! and ALRM are swallowed (their default action would kill the daemon).

use crate::event::{Event, SignalKind};
use crate::event_loop::Source;
use signal_hook::consts::{SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2};
use std::io::{self, Read};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct SignalSource {
    read: UnixStream,
    flags: Vec<(SignalKind, Arc<AtomicBool>)>,
    child: Arc<AtomicBool>,
}

impl SignalSource {
    pub fn install() -> io::Result<SignalSource> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for (sig, kind) in [
            (SIGHUP, SignalKind::Reload),
            (SIGTERM, SignalKind::Stop),
            (SIGINT, SignalKind::Stop),
            (SIGUSR1, SignalKind::Summary),
        ] {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
            flags.push((kind, flag));
        }
        let child = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGCHLD, Arc::clone(&child))?;
        signal_hook::low_level::pipe::register(SIGCHLD, write.try_clone()?)?;
        // A handler (rather than SIG_IGN) so spawned children start with the default again.
        // USR2 and ALRM would kill the daemon by default (leaving its socket): swallowed.
        for sig in [SIGPIPE, SIGUSR2, SIGALRM] {
            signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)))?;
        }
        Ok(SignalSource { read, flags, child })
    }
}

impl Source for SignalSource {
    fn interests(&self, out: &mut Vec<(RawFd, i16)>) {
        out.push((self.read.as_raw_fd(), crate::sys::poll::POLLIN));
    }

    fn ready(&mut self, _fd: RawFd, _revents: i16, _now: Instant, events: &mut Vec<Event>) {
        let mut sink = [0u8; 64];
        while matches!(self.read.read(&mut sink), Ok(n) if n > 0) {}
        for (kind, flag) in &self.flags {
            if flag.swap(false, Ordering::SeqCst) && !events.contains(&Event::Signal(*kind)) {
                events.push(Event::Signal(*kind));
            }
        }
        if self.child.swap(false, Ordering::SeqCst) {
            for (pid, status) in crate::sys::fd::reap_children() {
                events.push(Event::ChildExited { pid, status });
            }
        }
    }
}
