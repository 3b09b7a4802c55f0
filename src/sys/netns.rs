//! Running a piece of code inside another process's network namespace: `setns` there, run it,
//! `setns` back. Sockets created meanwhile stay in that namespace after we return (that is the
//! point: a netfilter or rtnetlink socket of the container's own). netmgrd has one thread, so
//! nothing else runs in the borrowed namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) on an fd we own, for the network namespace type only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs `f` in the network namespace of `pid` (needs CAP_SYS_ADMIN). netmgrd's own namespace
/// is entered again before returning; if that fails netmgrd cannot go on safely and aborts.
pub fn run_in<T>(pid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    let own = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(format!("/proc/{pid}/ns/net"))?;
    setns(&target)?;
    let out = f();
    if let Err(e) = setns(&own) {
        log::error!("cannot return to netmgrd's own network namespace: {e}; stopping");
        std::process::abort();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_process_is_an_error_and_we_stay_home() {
        let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert!(run_in(u32::MAX, || ()).is_err());
        assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").unwrap(), before);
    }
}
