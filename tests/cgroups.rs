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
        "cgroups:\n  root: {}\n  sets:\n    - {{ set: svc, paths: [\"{}/*.service\"], units: [deep.service], level: 2 }}\n",
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
    // A matching cgroup at the wrong depth is reported, not added.
    let deep = tree.mkdir("b.service/deep.service");
    let listed = || d.ctl("cgroups")["result"].clone();
    assert!(
        wait_until(WAIT, || listed().as_array().is_some_and(|l| l.iter().any(|c| c["id"] == deep))),
        "{}",
        listed()
    );
    let entry = listed().as_array().unwrap().iter().find(|c| c["id"] == deep).cloned().unwrap();
    assert_eq!(entry["in_set"], false, "{entry}");
    assert_eq!(ids(&ns), set(&[a2, b]));
    tree.rmdir("b.service/deep.service");
    let status = d.ctl("status")["result"].clone();
    assert_eq!(status["cgroup_sets"][0]["elements"], 2, "{status}");
}

/// A process in an allowed cgroup reaches a server; one outside is dropped by
/// `socket cgroupv2 level 2 @svc`, and a service that restarts (new cgroup, new id) is allowed
/// again without touching the ruleset.
#[test]
#[ignore = "needs root (network namespaces, cgroups); `make test` runs it as root"]
fn socket_cgroupv2_rule_allows_only_the_services_in_the_set() {
    let tree = Subtree::new("pkt");
    tree.mkdir("allowed.service");
    tree.mkdir("denied.scope");
    let ns = Netns::new("cgpkt");
    ns.sh("ip addr add 198.51.100.1/32 dev lo");
    ns.nft(
        "table inet filter {\n  set svc { typeof socket cgroupv2 level 2; }\n  chain output {\n    type filter hook output priority 0; policy accept;\n    tcp dport 7777 socket cgroupv2 level 2 @svc accept\n    tcp dport 7777 drop\n  }\n}\n",
    );
    let config = format!(
        "cgroups:\n  root: {}\n  sets:\n    - {{ set: svc, paths: [\"{}/*.service\"], level: 2 }}\n",
        tree.root.display(),
        tree.name
    );
    let d = Daemon::spawn_env(&ns, &config, &[("NETMGRD_NSENTER", "1")]);
    let allowed = std::fs::metadata(tree.root.join(&tree.name).join("allowed.service")).unwrap().ino();
    assert!(wait_until(WAIT, || ids(&ns) == set(&[allowed])), "{}", d.log_text());
    let server = std::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", ns.name))
        .args(["socat", "TCP-LISTEN:7777,bind=198.51.100.1,fork,reuseaddr", "SYSTEM:echo hi"])
        .spawn()
        .expect("server");
    // A client moved into a cgroup first (its pid into cgroup.procs), then connecting.
    let connect_from = |cgroup: &str| {
        let procs = tree.root.join(&tree.name).join(cgroup).join("cgroup.procs");
        let script = format!(
            "echo $$ > {} && exec socat -T2 - TCP:198.51.100.1:7777,connect-timeout=1 </dev/null",
            procs.display()
        );
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", ns.name))
            .args(["sh", "-c", &script])
            .output()
            .expect("client");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(wait_until(WAIT, || connect_from("allowed.service") == "hi"), "allowed client");
    assert_eq!(connect_from("denied.scope"), "", "a process outside the set is dropped");
    // The service restarts: a new cgroup with a new id; netmgrd follows, the rule still holds.
    tree.rmdir("allowed.service");
    let again = tree.mkdir("allowed.service");
    assert!(wait_until(WAIT, || ids(&ns) == set(&[again])), "{}", d.log_text());
    assert_eq!(connect_from("allowed.service"), "hi");
    let mut server = server;
    let _ = server.kill();
    let _ = server.wait();
}
