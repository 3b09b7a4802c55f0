//! `diff`: desired elements vs. what was last applied -> the smallest element changes. Pure.

use crate::elements::{Elem, SetId};
use crate::plan::Desired;
use std::collections::{BTreeMap, BTreeSet};

/// What netmgrd believes each managed set holds: read from the kernel at start/resync and
/// updated after every batch the kernel accepted. Sets that could not be read are absent.
pub type Applied = BTreeMap<SetId, BTreeSet<Elem>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetChange {
    pub set: SetId,
    pub add: Vec<Elem>,
    pub del: Vec<Elem>,
}

impl SetChange {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.del.is_empty()
    }

    pub fn len(&self) -> usize {
        self.add.len() + self.del.len()
    }
}

/// Changes for every set present in `applied`. A set that is applied but no longer desired
/// (its zone left the config) is emptied of what netmgrd put there. Desired sets missing from
/// `applied` (not readable in the kernel) get no change: there is nothing to send them to.
pub fn diff(desired: &Desired, applied: &Applied) -> Vec<SetChange> {
    let empty = BTreeSet::new();
    applied
        .iter()
        .map(|(set, have)| {
            let want = desired.get(set).unwrap_or(&empty);
            SetChange {
                set: set.clone(),
                add: want.difference(have).copied().collect(),
                del: have.difference(want).copied().collect(),
            }
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Records changes the kernel accepted. Sets no longer desired and now empty are forgotten.
pub fn record(applied: &mut Applied, desired: &Desired, changes: &[SetChange]) {
    for c in changes {
        if let Some(have) = applied.get_mut(&c.set) {
            for e in &c.del {
                have.remove(e);
            }
            have.extend(c.add.iter().copied());
        }
    }
    applied.retain(|set, have| desired.contains_key(set) || !have.is_empty());
}

/// Changes that remove every element in `applied` (`on_exit: flush`).
pub fn flush_all(applied: &Applied) -> Vec<SetChange> {
    diff(&Desired::new(), applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements::SetKind;
    use crate::elements::TableRef;

    fn set(name: &str) -> SetId {
        SetId { table: TableRef::parse("inet filter").unwrap(), name: name.into(), kind: SetKind::Ipv4Addr }
    }

    fn elems(list: &[&str]) -> BTreeSet<Elem> {
        list.iter().map(|a| Elem::Addr(a.parse().unwrap())).collect()
    }

    #[test]
    fn smallest_change() {
        let desired: Desired = [(set("a"), elems(&["192.0.2.1", "192.0.2.2"]))].into();
        let mut applied: Applied = [(set("a"), elems(&["192.0.2.2", "192.0.2.9"]))].into();
        let changes = diff(&desired, &applied);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].add, vec![Elem::Addr("192.0.2.1".parse().unwrap())]);
        assert_eq!(changes[0].del, vec![Elem::Addr("192.0.2.9".parse().unwrap())]);
        record(&mut applied, &desired, &changes);
        assert_eq!(applied[&set("a")], desired[&set("a")]);
        assert!(diff(&desired, &applied).is_empty(), "applied state converges");
    }

    #[test]
    fn missing_sets_get_no_change_and_dropped_sets_are_emptied() {
        let desired: Desired =
            [(set("present"), elems(&["192.0.2.1"])), (set("missing"), elems(&["192.0.2.2"]))].into();
        let mut applied: Applied =
            [(set("present"), elems(&[])), (set("old"), elems(&["198.51.100.1"]))].into();
        let changes = diff(&desired, &applied);
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.set.name != "missing"));
        let old = changes.iter().find(|c| c.set.name == "old").unwrap();
        assert_eq!(old.del.len(), 1);
        record(&mut applied, &desired, &changes);
        assert!(!applied.contains_key(&set("old")));
        assert!(applied.contains_key(&set("present")));
    }

    #[test]
    fn flush_removes_everything() {
        let applied: Applied = [(set("a"), elems(&["192.0.2.1", "192.0.2.2"]))].into();
        let changes = flush_all(&applied);
        assert_eq!(changes[0].del.len(), 2);
        assert!(changes[0].add.is_empty());
    }
}
