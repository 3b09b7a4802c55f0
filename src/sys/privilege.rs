//! Dropping root: after the sockets that need it are open, netmgrd keeps only
//! `CAP_NET_ADMIN` (permitted and effective; nothing inheritable, no ambient set, the bounding
//! set reduced to it), sets `no_new_privs`, drops supplementary groups and switches to an
//! unprivileged uid/gid. Plain libc calls (`prctl`, `capset`, `setresuid`), no crate.

use std::io;

const CAP_NET_ADMIN: u32 = 12;
const CAP_LAST_CAP_GUESS: u32 = 63;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A user to run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// `name` or a numeric uid, looked up in /etc/passwd (no NSS: routers keep users there).
pub fn lookup(name: &str) -> io::Result<Account> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let found = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (user, uid, gid) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        (*user == name || name.parse::<u32>().ok() == Some(uid)).then_some(Account { uid, gid })
    });
    found.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("user `{name}` is not in /etc/passwd"))
    })
}

fn check(rc: libc::c_long, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

/// Becomes `account` with `CAP_NET_ADMIN` only. Call while single-threaded.
pub fn drop_to(account: Account) -> io::Result<()> {
    // SAFETY: prctl/setgroups/setres[ug]id/capset with valid arguments; the capability structs
    // live on this stack frame for the duration of the call.
    unsafe {
        // The bounding set first (needs CAP_SETPCAP, which root still has).
        for cap in 0..=CAP_LAST_CAP_GUESS {
            if cap != CAP_NET_ADMIN && libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) == 1
            {
                check(
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) as libc::c_long,
                    "drop bounding cap",
                )?;
            }
        }
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) as libc::c_long, "PR_SET_KEEPCAPS")?;
        check(libc::setgroups(0, std::ptr::null()) as libc::c_long, "setgroups")?;
        check(libc::setresgid(account.gid, account.gid, account.gid) as libc::c_long, "setresgid")?;
        check(libc::setresuid(account.uid, account.uid, account.uid) as libc::c_long, "setresuid")?;
        let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let mut data = [CapData::default(); 2];
        data[0].effective = 1 << CAP_NET_ADMIN;
        data[0].permitted = 1 << CAP_NET_ADMIN;
        check(libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()), "capset")?;
        check(
            libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0)
                as libc::c_long,
            "clear ambient caps",
        )?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) as libc::c_long, "PR_SET_KEEPCAPS")?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long, "PR_SET_NO_NEW_PRIVS")?;
    }
    Ok(())
}

/// This process's uid and effective capabilities (`CapEff` of /proc/self/status, hex).
pub fn current() -> (u32, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string());
    let uid = field("Uid:").and_then(|v| v.split_whitespace().nth(1)?.parse().ok()).unwrap_or(u32::MAX);
    (uid, field("CapEff:").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_name_or_uid() {
        assert_eq!(lookup("root").unwrap(), Account { uid: 0, gid: 0 });
        assert_eq!(lookup("0").unwrap().uid, 0);
        assert!(lookup("no-such-user-here").is_err());
    }
}
