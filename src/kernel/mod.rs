//! What the daemon asks of the kernel, as a trait: read and write managed sets, build and
//! delete the owned table, turn a sysctl on. `NftKernel` does it for real (libnftnl, /proc);
//! `fake::FakeKernel` keeps it in memory with the kernel's semantics, so the turn logic
//! (reconcile, retry, repair) is tested without root.

pub mod fake;

use crate::diff::SetChange;
use crate::elements::{Desired, Elem, SetId, TableRef};
use crate::nft::{self, Nft, NftError};
use crate::ruleset::OwnedTable;
use crate::wire::route::Route;
use std::collections::BTreeSet;
use std::io;

pub trait Kernel {
    /// The elements of a managed set, checking its key type.
    fn read_set(&mut self, set: &SetId) -> Result<BTreeSet<Elem>, NftError>;
    fn table_exists(&mut self, table: &TableRef) -> Result<bool, NftError>;
    /// `None` when the table does not exist; `Some(true)` when it carries netmgrd's mark
    /// (it built it), `Some(false)` for anyone else's table.
    fn table_is_ours(&mut self, table: &TableRef) -> Result<Option<bool>, NftError>;
    /// Every change in one atomic transaction; on error nothing was applied.
    fn apply(&mut self, changes: &[SetChange]) -> Result<(), NftError>;
    /// The owned table with its sets holding `elements`, in one transaction (in place when
    /// `previous` has the same chains).
    fn build_owned_table(
        &mut self,
        spec: &OwnedTable,
        elements: &Desired,
        previous: Option<&OwnedTable>,
    ) -> Result<(), NftError>;
    /// Removes a table if it exists.
    fn delete_table(&mut self, table: &TableRef) -> Result<(), NftError>;
    /// Transactions sent so far (for `status` and the benchmark).
    fn batches_sent(&self) -> u64;
    /// Writes `1` to a sysctl unless it already reads `1`; `Ok(true)` when it was changed.
    fn sysctl_on(&mut self, path: &str) -> io::Result<bool>;
    /// Inside the network namespace of `pid`: netmgrd's table replaced whole by `table` (or
    /// removed), forwarding on when there is a table, `stale` routes deleted and `routes`
    /// created or replaced.
    fn setup_netns(
        &mut self,
        pid: u32,
        table: Option<&OwnedTable>,
        routes: &[Route],
        stale: &[Route],
    ) -> Result<(), String>;
}

/// The real kernel: one long-lived netfilter socket and /proc/sys.
pub struct NftKernel {
    nft: Nft,
}

impl NftKernel {
    pub fn new(nft: Nft) -> NftKernel {
        NftKernel { nft }
    }
}

impl Kernel for NftKernel {
    fn read_set(&mut self, set: &SetId) -> Result<BTreeSet<Elem>, NftError> {
        self.nft.read_set(set)
    }

    fn table_exists(&mut self, table: &TableRef) -> Result<bool, NftError> {
        self.nft.table_exists(table)
    }

    fn table_is_ours(&mut self, table: &TableRef) -> Result<Option<bool>, NftError> {
        Ok(self.nft.table_userdata(table)?.map(|u| u == nft::OWNED_TABLE_MARK))
    }

    fn apply(&mut self, changes: &[SetChange]) -> Result<(), NftError> {
        match self.nft.apply(changes) {
            // The kernel says ENFILE ("Too many open files in system") for a full set.
            Err(NftError::Rejected { set: Some(name), errno: libc::ENFILE, .. }) => {
                let size = changes
                    .iter()
                    .find(|c| c.set.to_string() == name)
                    .and_then(|c| self.nft.set_size(&c.set).ok().flatten());
                Err(NftError::Full { set: name, size })
            }
            other => other,
        }
    }

    fn build_owned_table(
        &mut self,
        spec: &OwnedTable,
        elements: &Desired,
        previous: Option<&OwnedTable>,
    ) -> Result<(), NftError> {
        nft::build_owned_table(&mut self.nft, spec, elements, previous)
    }

    fn delete_table(&mut self, table: &TableRef) -> Result<(), NftError> {
        nft::delete_owned_table(&mut self.nft, table)
    }

    fn batches_sent(&self) -> u64 {
        self.nft.batches_sent
    }

    fn setup_netns(
        &mut self,
        pid: u32,
        table: Option<&OwnedTable>,
        routes: &[Route],
        stale: &[Route],
    ) -> Result<(), String> {
        crate::sys::netns::run_in(pid, || setup_here(table, routes, stale))
            .map_err(|e| format!("cannot enter the network namespace of pid {pid}: {e}"))?
    }

    fn sysctl_on(&mut self, path: &str) -> io::Result<bool> {
        crate::sys::sysctl::turn_on(path)
    }
}

/// In the current network namespace (a container's): its own netfilter and rtnetlink
/// sockets, opened and closed here.
fn setup_here(table: Option<&OwnedTable>, routes: &[Route], stale: &[Route]) -> Result<(), String> {
    let mut nft = Nft::open().map_err(|e| format!("netfilter socket: {e}"))?;
    match table {
        Some(t) => {
            nft::build_owned_table(&mut nft, t, &Desired::default(), None).map_err(|e| e.to_string())?;
            // /proc/sys/net is the namespace of whoever opens it: this container's.
            crate::sys::sysctl::turn_on("/proc/sys/net/ipv4/ip_forward")
                .map_err(|e| format!("ip_forward: {e}"))?;
        }
        None => {
            nft::delete_owned_table(&mut nft, &crate::container_ns::ns_table()).map_err(|e| e.to_string())?
        }
    }
    if routes.is_empty() && stale.is_empty() {
        return Ok(());
    }
    let sock = neli::socket::NlSocket::connect(
        neli::consts::socket::NlFamily::Route,
        None,
        neli::utils::Groups::empty(),
    )
    .map_err(|e| format!("rtnetlink socket: {e}"))?;
    // Stale ones first (seq 1..), then the wanted ones; "already gone" is fine.
    let all: Vec<(bool, &Route)> =
        stale.iter().map(|r| (false, r)).chain(routes.iter().map(|r| (true, r))).collect();
    let requests: Vec<Vec<u8>> = all
        .iter()
        .enumerate()
        .map(|(i, (add, r))| crate::wire::route::route_request(*add, r, i as u32 + 1))
        .collect();
    let parts: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
    use std::os::fd::AsRawFd;
    crate::sys::fd::send_iovecs(sock.as_raw_fd(), &parts).map_err(|e| format!("route request: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut answered = 0;
    while answered < all.len() {
        let n = crate::sys::fd::recv(sock.as_raw_fd(), &mut buf, false)
            .map_err(|e| format!("route answer: {e}"))?
            .unwrap_or(0);
        if n == 0 {
            return Err("rtnetlink closed".into());
        }
        for m in crate::wire::route::parse(&buf[..n]) {
            if let crate::wire::route::RouteMessage::Ack { seq, errno, message } = m {
                answered += 1;
                let Some((add, r)) = all.get((seq as usize).wrapping_sub(1)) else { continue };
                let gone = !*add && (errno == libc::ESRCH || errno == libc::ENOENT);
                if errno != 0 && !gone {
                    let r = format!("{:?} via {:?}", r.dst, r.gateway);
                    return Err(format!(
                        "route {r}: {}{}",
                        io::Error::from_raw_os_error(errno),
                        message.map(|m| format!(" ({m})")).unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(())
}
