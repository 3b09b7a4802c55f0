//! An in-memory kernel with nftables' semantics, for tests of the turn logic: adding an
//! element that exists fails with `EEXIST` and deleting one that does not with `ENOENT`,
//! rolling back the whole transaction; sets and tables can vanish or appear behind the
//! daemon's back, as a foreign `nft` command would make them.

use super::Kernel;
use crate::diff::SetChange;
use crate::elements::{Desired, Elem, SetId, SetKind, TableRef};
use crate::nft::NftError;
use crate::ruleset::OwnedTable;
use crate::wire::route::Route;
use std::collections::{BTreeMap, BTreeSet};
use std::io;

#[derive(Clone, Debug, Default)]
pub struct FakeKernel {
    /// Tables, each with its sets (name -> key type and elements).
    pub tables: BTreeMap<TableRef, BTreeMap<String, (SetKind, BTreeSet<Elem>)>>,
    /// Owned tables as last built.
    pub owned: BTreeMap<TableRef, OwnedTable>,
    pub batches: u64,
    /// Sysctls turned on.
    pub sysctls: BTreeSet<String>,
    /// The next `apply` fails with this errno (a kernel refusal), once.
    pub fail_next_apply: Option<i32>,
    /// Declared set sizes (`size N`): an add past it fails the transaction with `Full`.
    pub sizes: BTreeMap<SetId, u32>,
    /// Container namespaces set up, by pid: their table and routes.
    pub netns: BTreeMap<u32, (Option<OwnedTable>, Vec<crate::wire::route::Route>)>,
}

impl FakeKernel {
    /// Declares an empty set (creating its table), as the admin's ruleset would.
    pub fn declare(&mut self, set: &SetId) {
        self.tables
            .entry(set.table.clone())
            .or_default()
            .insert(set.name.clone(), (set.kind, BTreeSet::new()));
    }

    pub fn elements(&self, set: &SetId) -> Option<&BTreeSet<Elem>> {
        self.tables.get(&set.table)?.get(&set.name).map(|(_, e)| e)
    }

    /// A foreign change: elements added or removed directly.
    pub fn elements_mut(&mut self, set: &SetId) -> Option<&mut BTreeSet<Elem>> {
        self.tables.get_mut(&set.table)?.get_mut(&set.name).map(|(_, e)| e)
    }

    pub fn delete_table_now(&mut self, table: &TableRef) {
        self.tables.remove(table);
        self.owned.remove(table);
    }

    fn set_mut(&mut self, set: &SetId) -> Result<&mut BTreeSet<Elem>, NftError> {
        let missing = || NftError::Missing { set: set.to_string() };
        let (kind, elems) =
            self.tables.get_mut(&set.table).ok_or_else(missing)?.get_mut(&set.name).ok_or_else(missing)?;
        if *kind != set.kind {
            return Err(NftError::WrongType {
                set: set.to_string(),
                expected: set.kind.declaration(),
                found: kind.declaration().to_string(),
            });
        }
        Ok(elems)
    }
}

fn rejected(set: &SetId, op: &'static str, errno: i32) -> NftError {
    NftError::Rejected { set: Some(set.to_string()), op, errno, message: None }
}

impl Kernel for FakeKernel {
    fn read_set(&mut self, set: &SetId) -> Result<BTreeSet<Elem>, NftError> {
        self.set_mut(set).map(|e| e.clone())
    }

    fn table_exists(&mut self, table: &TableRef) -> Result<bool, NftError> {
        Ok(self.tables.contains_key(table))
    }

    fn table_is_ours(&mut self, table: &TableRef) -> Result<Option<bool>, NftError> {
        Ok(self.tables.contains_key(table).then(|| self.owned.contains_key(table)))
    }

    fn apply(&mut self, changes: &[SetChange]) -> Result<(), NftError> {
        if changes.iter().all(|c| c.is_empty()) {
            return Ok(());
        }
        self.batches += 1;
        if let Some(errno) = self.fail_next_apply.take() {
            let set = &changes[0].set;
            return Err(rejected(set, "add elements", errno));
        }
        // All or nothing: work on a copy, keep it only when every change applies.
        let mut next = self.clone();
        for c in changes {
            let elems = next.set_mut(&c.set).map_err(|e| match e {
                NftError::Missing { .. } => rejected(&c.set, "add elements", libc::ENOENT),
                other => other,
            })?;
            for e in &c.del {
                if !elems.remove(e) {
                    return Err(rejected(&c.set, "delete elements", libc::ENOENT));
                }
            }
            for e in &c.add {
                if !elems.insert(*e) {
                    return Err(rejected(&c.set, "add elements", libc::EEXIST));
                }
            }
            if let Some(&size) = self.sizes.get(&c.set) {
                if next.elements(&c.set).is_some_and(|e| e.len() > size as usize) {
                    return Err(NftError::Full { set: c.set.to_string(), size: Some(size) });
                }
            }
        }
        next.batches = self.batches;
        *self = next;
        Ok(())
    }

    fn build_owned_table(
        &mut self,
        spec: &OwnedTable,
        elements: &Desired,
        _previous: Option<&OwnedTable>,
    ) -> Result<(), NftError> {
        self.batches += 1;
        let sets = spec
            .sets
            .iter()
            .map(|s| (s.name.clone(), (s.kind, elements.get(s).cloned().unwrap_or_default())))
            .collect();
        self.tables.insert(spec.table.clone(), sets);
        self.owned.insert(spec.table.clone(), spec.clone());
        Ok(())
    }

    fn delete_table(&mut self, table: &TableRef) -> Result<(), NftError> {
        self.batches += 1;
        self.delete_table_now(table);
        Ok(())
    }

    fn batches_sent(&self) -> u64 {
        self.batches
    }

    fn sysctl_on(&mut self, path: &str) -> io::Result<bool> {
        Ok(self.sysctls.insert(path.to_string()))
    }

    fn setup_netns(
        &mut self,
        pid: u32,
        table: Option<&OwnedTable>,
        routes: &[Route],
        _stale: &[Route],
    ) -> Result<(), String> {
        self.netns.insert(pid, (table.cloned(), routes.to_vec()));
        Ok(())
    }
}
