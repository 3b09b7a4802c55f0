//! Golden tests of the owned table: config text in, nft text out, the same text that
//! `netmgrd check --print` prints (and that is sent as one batch). No root needed.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the `.nft` files after a deliberate
//! change; review the diff before committing it.

mod common;

use netmgrd::setup::Setup;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut yaml: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    yaml.sort();
    assert!(yaml.len() >= 4, "golden cases are missing: {yaml:?}");
    yaml
}

/// The config as if it lived at /etc/netmgrd/config.yaml (rule comments name the file).
fn render(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read case");
    let setup = Setup::parse(Path::new("/etc/netmgrd/config.yaml"), &text).expect("case parses");
    setup.owned.expect("case has an owned table").table.render()
}

#[test]
fn owned_table_text_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let got = render(&case);
        let golden = case.with_extension("nft");
        if update {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!("{}:\n--- want\n{want}\n--- got\n{got}", golden.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_print_prints_the_golden_text() {
    let dir = std::env::temp_dir().join(format!("netmgrd-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for case in cases() {
        let out = Command::new(common::netmgrd_bin())
            .args(["check", "--print", "--config"])
            .arg(&case)
            .output()
            .expect("run netmgrd check");
        assert!(out.status.success(), "{}: {}", case.display(), String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout);
        // Only the file name in rule comments differs.
        let expected = render(&case).replace("/etc/netmgrd/config.yaml", &case.display().to_string());
        assert_eq!(printed, expected, "{}", case.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
