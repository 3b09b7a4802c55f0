//! Spawning a child with non-blocking pipes for the poll loop (the journal reader, hook
//! scripts). The loop never waits on the child: `SIGCHLD` reaps it (`Event::ChildExited`)
//! and the owner matches the pid.

use super::fd::set_nonblocking;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// A running child: its pid and the read ends of its stdout and stderr (non-blocking,
/// close-on-exec). Dropping this neither waits for nor kills the child.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Starts `program` with `args` and extra `env`, stdin from /dev/null.
pub fn spawn_with_pipes<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    env: &[(&str, &str)],
) -> io::Result<Spawned> {
    spawn(Command::new(program), args, env)
}

/// Like `spawn_with_pipes`, in a process group of its own (pgid = pid), so a timeout can
/// signal the script and whatever it started.
pub fn spawn_in_group<S: AsRef<OsStr>>(
    program: &std::path::Path,
    args: &[S],
    env: &[(&str, &str)],
) -> io::Result<Spawned> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.process_group(0);
    spawn(cmd, args, env)
}

fn spawn<S: AsRef<OsStr>>(mut cmd: Command, args: &[S], env: &[(&str, &str)]) -> io::Result<Spawned> {
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
    let stdout: OwnedFd = child.stdout.take().ok_or_else(|| io::Error::other("no stdout pipe"))?.into();
    let stderr: OwnedFd = child.stderr.take().ok_or_else(|| io::Error::other("no stderr pipe"))?.into();
    set_nonblocking(stdout.as_raw_fd())?;
    set_nonblocking(stderr.as_raw_fd())?;
    // `child` is dropped without waiting: the pid is reaped by the signal source.
    Ok(Spawned { pid, stdout, stderr })
}

/// Sends `sig` to `pid` (a child of ours; ESRCH when it is already gone).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll::{poll, PollFd, POLLIN};
    use std::io::Read;
    use std::time::Duration;

    #[test]
    fn output_arrives_through_non_blocking_pipes_and_the_status_through_waitpid() {
        let s = spawn_with_pipes("sh", &["-c", "printf out; printf err >&2; exit 3"], &[("X", "1")]).unwrap();
        let mut out = std::fs::File::from(s.stdout);
        let mut buf = Vec::new();
        // Non-blocking: reading before the child wrote gives WouldBlock, never a hang.
        loop {
            let mut chunk = [0u8; 64];
            match out.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd { fd: out.as_raw_fd(), events: POLLIN, revents: 0 }];
                    poll(&mut fds, Some(Duration::from_secs(5))).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(buf, b"out");
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(s.pid, &mut status, 0) };
        assert_eq!(pid, s.pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
    }
}
