//! `poll(2)` over a list of fds.

use std::io;
use std::os::unix::io::RawFd;
use std::time::Duration;

pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;
pub const POLLERR: i16 = libc::POLLERR;
pub const POLLHUP: i16 = libc::POLLHUP;
pub const POLLNVAL: i16 = libc::POLLNVAL;

#[derive(Clone, Copy, Debug)]
pub struct PollFd {
    pub fd: RawFd,
    pub events: i16,
    pub revents: i16,
}

/// Waits until an fd is ready or `timeout` passes (`None`: wait forever). `EINTR` is not an
/// error: it returns with no fd ready, so the caller looks at its signal pipe.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let mut raw: Vec<libc::pollfd> =
        fds.iter().map(|f| libc::pollfd { fd: f.fd, events: f.events, revents: 0 }).collect();
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up so a deadline 0.3 ms away does not become a busy loop of 0 ms polls.
        Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: `raw` is a valid, exclusively borrowed array of `raw.len()` pollfd structs.
    let n = unsafe { libc::poll(raw.as_mut_ptr(), raw.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    for (f, r) in fds.iter_mut().zip(&raw) {
        f.revents = r.revents;
    }
    Ok(n as usize)
}
