//! Readiness for systemd (`Type=notify`) without libsystemd: plain datagrams to
//! `$NOTIFY_SOCKET` (a path, or an abstract name written `@name`). `READY=1` after the first
//! complete reconcile, `RELOADING=1` + `MONOTONIC_USEC=` and `READY=1` around a reload,
//! `STOPPING=1` at the end, each with a short `STATUS=`. Without `$NOTIFY_SOCKET` it does
//! nothing. It owns no fd to poll: the daemon's `Outgoing::Lifecycle` messages drive it.

use crate::event::Event;
use crate::event_loop::{Lifecycle, Outgoing, Source};
use std::os::unix::io::RawFd;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Instant;

pub struct NotifySource {
    target: Option<(UnixDatagram, SocketAddr)>,
}

/// The datagram for one lifecycle step.
pub fn message(step: &Lifecycle, monotonic_usec: u64) -> String {
    match step {
        Lifecycle::Ready { status } => format!("READY=1\nSTATUS={status}"),
        Lifecycle::Reloading => format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS=reloading"),
        Lifecycle::Stopping => "STOPPING=1\nSTATUS=stopping".to_string(),
    }
}

fn address(spec: &str) -> std::io::Result<SocketAddr> {
    match spec.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(spec),
    }
}

impl NotifySource {
    /// Reads `$NOTIFY_SOCKET` (the value given) and takes it out of the environment, so that
    /// children (hooks, journalctl) never notify in netmgrd's name.
    pub fn from_env_value(value: Option<String>) -> NotifySource {
        let target = value.filter(|v| !v.is_empty()).and_then(|spec| {
            let addr = address(&spec).map_err(|e| log::warn!("NOTIFY_SOCKET `{spec}`: {e}")).ok()?;
            let sock = UnixDatagram::unbound().map_err(|e| log::warn!("notify socket: {e}")).ok()?;
            Some((sock, addr))
        });
        NotifySource { target }
    }
}

impl Source for NotifySource {
    fn interests(&self, _out: &mut Vec<(RawFd, i16)>) {}

    fn ready(&mut self, _fd: RawFd, _revents: i16, _now: Instant, _events: &mut Vec<Event>) {}

    fn deliver(&mut self, msg: &Outgoing) {
        let (Outgoing::Lifecycle(step), Some((sock, addr))) = (msg, &self.target) else { return };
        let text = message(step, crate::sys::clock::monotonic_usec());
        if let Err(e) = sock.send_to_addr(text.as_bytes(), addr) {
            log::warn!("cannot notify the service manager: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_or_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("netmgrd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut n = NotifySource::from_env_value(Some(path.display().to_string()));
        n.deliver(&Outgoing::Lifecycle(Lifecycle::Ready { status: "2 managed set(s)".into() }));
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=2 managed set(s)");

        let name = format!("netmgrd-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let mut n = NotifySource::from_env_value(Some(format!("@{name}")));
        n.deliver(&Outgoing::Lifecycle(Lifecycle::Reloading));
        let len = abs.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        assert!(
            text.starts_with("RELOADING=1\nMONOTONIC_USEC=") && text.ends_with("\nSTATUS=reloading"),
            "{text}"
        );
        // Without NOTIFY_SOCKET: nothing, no error.
        NotifySource::from_env_value(None).deliver(&Outgoing::Lifecycle(Lifecycle::Stopping));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
