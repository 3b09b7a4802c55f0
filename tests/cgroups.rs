//! Cgroup ids into `socket cgroupv2` sets: a test-owned subtree of the machine's cgroup2 mount,
//! netmgrd in a private network namespace (entered with nsenter, so /sys keeps the cgroup tree),
//! the set read back from the kernel.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// A directory of our own under the cgroup2 mount, removed (children first) at the end.
struct Subtree {
    root: PathBuf,
    name: String,
}

impl Subtree {
    fn new(tag: &str) -> Subtree {
        let root = netmgrd::sources::cgroups::find_root().expect("a cgroup2 mount");
        let name = format!("nmcg-{tag}-{}", std::process::id());
        std::fs::create_dir(root.join(&name)).expect("create test cgroup");
        Subtree { root, name }
    }

    fn mkdir(&self, child: &str) -> u64 {
        let p = self.root.join(&self.name).join(child);
        std::fs::create_dir(&p).expect("create cgroup");
        std::fs::metadata(&p).expect("stat").ino()
    }

    fn rmdir(&self, child: &str) {
        std::fs::remove_dir(self.root.join(&self.name).join(child)).expect("remove cgroup");
    }
}

impl Drop for Subtree {
    fn drop(&mut self) {
        let dir = self.root.join(&self.name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

fn ids(ns: &Netns) -> BTreeSet<String> {
    ns.set_elements("inet filter", "svc").unwrap_or_default()
}

fn set(ids: &[u64]) -> BTreeSet<String> {
    ids.iter().map(|i| i.to_string()).collect()
}

#[test]
#[ignore = "needs root (network namespaces, cgroups); `make test` runs it as root"]
fn cgroups_created_before_and_after_start_removed_and_recreated_follow_the_set() {
    let tree = Subtree::new("life");
    let a = tree.mkdir("a.service");
    tree.mkdir("other.scope");
    let ns = Netns::new("cg");
    ns.nft("table inet filter {\n  set svc { typeof socket cgroupv2 level 2; }\n}\n");
    // A stale id from an earlier run is removed at start.
    ns.sh("nft add element inet filter svc '{ 999999999 }' 2>/dev/null || true");
    let config = format!(
        "cgroups:\n  root: {}\n  sets:\n    - {{ set: svc, paths: [\"{}/*.service\"], level: 2 }}\n",
        tree.root.display(),
        tree.name
    );
    let d = Daemon::spawn_env(&ns, &config, &[("NETMGRD_NSENTER", "1")]);
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a])), "{:?} {}", ids(&ns), d.log_text());
    let b = tree.mkdir("b.service");
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a, b])), "{}", d.log_text());
    tree.rmdir("a.service");
    assert!(wait_until(WAIT, || ids(&ns) == set(&[b])), "{}", d.log_text());
    let a2 = tree.mkdir("a.service");
    assert_ne!(a, a2, "a re-created cgroup has a new id");
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a2, b])), "{}", d.log_text());
    // A cgroup that appears and vanishes between turns leaves nothing behind.
    tree.mkdir("flash.service");
    tree.rmdir("flash.service");
    // 100 services at once.
    let many: Vec<u64> = (0..100).map(|i| tree.mkdir(&format!("s{i}.service"))).collect();
    let mut want: Vec<u64> = many.clone();
    want.extend([a2, b]);
    assert!(wait_until(Duration::from_secs(10), || ids(&ns) == set(&want)), "{}", d.log_text());
    for i in 0..100 {
        tree.rmdir(&format!("s{i}.service"));
    }
    assert!(wait_until(Duration::from_secs(10), || ids(&ns) == set(&[a2, b])), "{}", d.log_text());
    let status = d.ctl("status")["result"].clone();
    assert_eq!(status["cgroup_sets"][0]["elements"], 2, "{status}");
}
