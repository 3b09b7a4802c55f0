//! The signal source in a process of its own (handlers are process-wide): a child that ends
//! is reaped on SIGCHLD and reported with its pid and exit status; HUP becomes a reload.

use netmgrd::event::{Event, SignalKind};
use netmgrd::event_loop::Source;
use netmgrd::sources::signals::SignalSource;
use netmgrd::sys::poll::{poll, PollFd};
use netmgrd::sys::spawn::spawn_with_pipes;
use std::time::{Duration, Instant};

/// Polls the source until `want` says the collected events are complete, or a deadline.
fn collect(source: &mut SignalSource, want: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while !want(&events) && Instant::now() < deadline {
        let mut interests = Vec::new();
        source.interests(&mut interests);
        let mut fds: Vec<PollFd> =
            interests.iter().map(|&(fd, ev)| PollFd { fd, events: ev, revents: 0 }).collect();
        poll(&mut fds, Some(Duration::from_millis(200))).expect("poll");
        for f in fds.iter().filter(|f| f.revents != 0) {
            source.ready(f.fd, f.revents, Instant::now(), &mut events);
        }
    }
    events
}

#[test]
fn children_are_reaped_with_their_status_and_hup_reloads() {
    let mut source = SignalSource::install().expect("install");
    let child = spawn_with_pipes("sh", &["-c", "exit 7"], &[]).expect("spawn");
    let events = collect(&mut source, |ev| {
        ev.iter().any(|e| matches!(e, Event::ChildExited { pid, .. } if *pid == child.pid))
    });
    let status = events
        .iter()
        .find_map(|e| match e {
            Event::ChildExited { pid, status } if *pid == child.pid => Some(*status),
            _ => None,
        })
        .expect("the child's exit is reported");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7, "status {status:#x}");

    // SAFETY: signals our own process; the handler only writes to the self-pipe.
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    let events = collect(&mut source, |ev| ev.contains(&Event::Signal(SignalKind::Reload)));
    assert!(events.contains(&Event::Signal(SignalKind::Reload)), "{events:?}");
}

#[test]
fn usr1_asks_for_a_summary_and_usr2_alrm_are_harmless() {
    let mut source = SignalSource::install().expect("install");
    // SAFETY: signals our own process; handlers are installed, so none of these is fatal.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGUSR2);
        libc::kill(libc::getpid(), libc::SIGALRM);
        libc::kill(libc::getpid(), libc::SIGUSR1);
    }
    let events = collect(&mut source, |ev| ev.contains(&Event::Signal(SignalKind::Summary)));
    assert!(events.contains(&Event::Signal(SignalKind::Summary)), "{events:?}");
}
