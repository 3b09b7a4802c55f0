//! A real systemd-journald of the test's own, in a private mount namespace whose /run/systemd
//! and /run/log are fresh tmpfs mounts (the host's journal, if any, is not touched). Shared by
//! the cgroup tests and the benchmark.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateJournald {
    child: Child,
}

/// systemd's "start job finished" and "stop job finished" message ids.
pub const STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
pub const STOPPED: &str = "9d1aaa27d60140bd96365438aad20286";

impl PrivateJournald {
    /// `None` when systemd-journald is not installed or does not come up within 5 s.
    pub fn start() -> Option<PrivateJournald> {
        let exe = ["/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let script = format!(
            "set -e; mkdir -p /run/systemd /run/log; mount -t tmpfs tmpfs /run/systemd; \
             mount -t tmpfs tmpfs /run/log; if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi; \
             mkdir -p /run/systemd/journal; exec {exe}"
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let j = PrivateJournald { child };
        let t = Instant::now();
        while std::fs::symlink_metadata(j.socket()).is_err() {
            if t.elapsed() > Duration::from_secs(5) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(j)
    }

    /// Its mount namespace, for `nsenter --mount=...`.
    pub fn mount_ns(&self) -> String {
        format!("/proc/{}/ns/mnt", self.child.id())
    }

    /// Its native-protocol socket, reached from outside its mount namespace.
    pub fn socket(&self) -> String {
        format!("/proc/{}/root/run/systemd/journal/socket", self.child.id())
    }

    /// Logs a unit lifecycle message the way systemd does (`MESSAGE_ID` + `UNIT`), as one
    /// datagram of the native journal protocol.
    pub fn log(&self, message_id: &str, unit: &str) {
        let sock = std::os::unix::net::UnixDatagram::unbound().expect("datagram socket");
        sock.send_to(
            format!("MESSAGE=unit {unit}\nMESSAGE_ID={message_id}\nUNIT={unit}\n").as_bytes(),
            self.socket(),
        )
        .expect("journal send");
    }
}

impl Drop for PrivateJournald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
