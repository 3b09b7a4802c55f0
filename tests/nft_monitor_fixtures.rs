//! nf_tables notifications captured from the real kernel (`nft -f` in a private namespace,
//! read from `NFNLGRP_NFTABLES` as `nft monitor` does), decoded by `wire::nft_monitor`.

use netmgrd::wire::nft_monitor::{parse, Change, Notification, ObjectKind, Op};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nft_monitor").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn decode(name: &str) -> Vec<Notification> {
    parse(&fixture(name)).into_iter().map(|n| n.expect("decodes")).collect()
}

fn changes(notes: &[Notification]) -> Vec<&Change> {
    notes.iter().filter_map(|n| if let Notification::Change(c) = n { Some(c) } else { None }).collect()
}

fn committer(notes: &[Notification]) -> (u32, String) {
    match notes.last() {
        Some(Notification::NewGen { pid, process }) => (*pid, process.clone()),
        other => panic!("a commit ends with NEWGEN, got {other:?}"),
    }
}

#[test]
fn a_ruleset_load_names_its_table_sets_and_committer() {
    let notes = decode("ruleset_load.bin");
    let (pid, process) = committer(&notes);
    assert!(pid > 0);
    assert_eq!(process, "nft");
    let c = changes(&notes);
    assert!(c
        .iter()
        .any(|c| c.kind == ObjectKind::Table && c.op == Op::New && c.table == "filter" && c.family == 1));
    for set in ["wan_ips", "wan_ipv6"] {
        assert!(c.iter().any(|c| c.kind == ObjectKind::Set && c.name.as_deref() == Some(set)), "{set}");
    }
    assert!(c.iter().any(|c| c.kind == ObjectKind::Rule && c.name.as_deref() == Some("input")));
}

#[test]
fn element_changes_carry_their_set_and_count() {
    let notes = decode("elements_add.bin");
    let added: u32 = changes(&notes)
        .iter()
        .filter(|c| c.kind == ObjectKind::Elements && c.op == Op::New && c.name.as_deref() == Some("wan_ips"))
        .map(|c| c.count)
        .sum();
    assert_eq!(added, 2);
    let notes = decode("element_delete.bin");
    let c = changes(&notes);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].kind, c[0].op, c[0].name.as_deref(), c[0].count),
        (ObjectKind::Elements, Op::Delete, Some("wan_ips"), 1)
    );
    let notes = decode("table_delete.bin");
    assert!(changes(&notes)
        .iter()
        .any(|c| c.kind == ObjectKind::Table && c.op == Op::Delete && c.table == "filter"));
}

#[test]
fn every_truncation_decodes_or_errs_without_panicking() {
    for name in ["ruleset_load.bin", "elements_add.bin", "element_delete.bin", "table_delete.bin"] {
        let bytes = fixture(name);
        for cut in 0..bytes.len() {
            let _ = parse(&bytes[..cut]);
        }
    }
}
