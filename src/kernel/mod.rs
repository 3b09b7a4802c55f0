//! What the daemon asks of the kernel, as a trait: read and write managed sets, build and
//! delete the owned table, turn a sysctl on. `NftKernel` does it for real (libnftnl, /proc);
//! `fake::FakeKernel` keeps it in memory with the kernel's semantics, so the turn logic
//! (reconcile, retry, repair) is tested without root.

pub mod fake;

use crate::diff::SetChange;
use crate::elements::{Desired, Elem, SetId, TableRef};
use crate::nft::{self, Nft, NftError};
use crate::ruleset::OwnedTable;
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

    fn sysctl_on(&mut self, path: &str) -> io::Result<bool> {
        crate::sys::sysctl::turn_on(path)
    }
}
