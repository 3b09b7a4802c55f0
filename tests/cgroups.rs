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

/// A fake `journalctl` first in PATH: records its pid and arguments, then replays (and
/// follows) a feed file the test appends captured lines to.
struct FakeJournal {
    dir: PathBuf,
}

impl FakeJournal {
    fn new(ns: &Netns) -> FakeJournal {
        let dir = ns.dir.join("journal");
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        let script = format!(
            "#!/bin/sh\necho \"$$ $*\" >> {d}/argv\nexec tail -n +1 -f {d}/feed\n",
            d = dir.display()
        );
        let bin = dir.join("bin/journalctl");
        std::fs::write(&bin, script).expect("write fake journalctl");
        std::process::Command::new("chmod").arg("+x").arg(&bin).status().expect("chmod");
        std::fs::write(dir.join("feed"), "").expect("feed");
        FakeJournal { dir }
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default())
    }

    fn append(&self, line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(self.dir.join("feed")).expect("feed");
        writeln!(f, "{line}").expect("append");
    }

    /// One line per start of the fake: "PID ARGS".
    fn starts(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("argv")).unwrap_or_default().lines().map(String::from).collect()
    }
}

fn unit_line(id: &str, unit: &str) -> String {
    format!(r#"{{"__CURSOR":"s=1;i=1","MESSAGE_ID":"{id}","_BOOT_ID":"03","UNIT":"{unit}"}}"#)
}

use common::journald::{STARTED, STOPPED};

#[test]
#[ignore = "needs root (network namespaces, cgroups); `make test` runs it as root"]
fn journal_mode_follows_unit_messages_survives_garbage_and_a_dying_journalctl() {
    let tree = Subtree::new("jr");
    let p = std::process::id();
    let unit = |n: &str| format!("nmj{p}-{n}.service");
    let a = tree.mkdir(&unit("a"));
    let ns = Netns::new("cgj");
    ns.nft("table inet filter {\n  set svc { typeof socket cgroupv2 level 2; }\n}\n");
    let fake = FakeJournal::new(&ns);
    let config = format!(
        "cgroups:\n  root: {}\n  watch: journal\n  sets:\n    - {{ set: svc, units: [\"nmj{p}-*.service\"] }}\n",
        tree.root.display()
    );
    let path = fake.path_env();
    let d = Daemon::spawn_env(&ns, &config, &[("NETMGRD_NSENTER", "1"), ("PATH", &path)]);
    // The full scan at start finds what exists.
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a])), "{:?} {}", ids(&ns), d.log_text());
    assert!(wait_until(WAIT, || fake.starts().len() == 1), "{:?}", fake.starts());
    let starts = fake.starts();
    for arg in ["--follow", "--output=json", "--output-fields=MESSAGE_ID,UNIT,USER_UNIT", "--since=@"] {
        assert!(starts[0].contains(arg), "{arg} missing: {}", starts[0]);
    }
    assert!(
        starts[0].contains(&format!("MESSAGE_ID={STARTED}"))
            && starts[0].contains(&format!("MESSAGE_ID={STOPPED}"))
    );
    let status = d.ctl("status")["result"]["cgroups"].clone();
    assert_eq!(status["watch"], "journal", "{status}");

    // A cgroup without a message is not looked at (the journal is the trigger) ...
    let b = tree.mkdir(&unit("b"));
    // ... until a message names its unit; garbage and a truncated line in front change nothing.
    fake.append("garbage");
    fake.append(&unit_line(STARTED, &unit("b"))[..30]);
    fake.append(&unit_line(STARTED, "other.service"));
    assert!(wait_until(WAIT, || d.ctl("status")["result"]["cgroups"]["bad_lines"] == 2), "{}", d.log_text());
    assert_eq!(ids(&ns), set(&[a]), "b is not in the set before its message");
    fake.append(&unit_line(STARTED, &unit("b")));
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a, b])), "{:?} {}", ids(&ns), d.log_text());

    // Stopped and removed.
    tree.rmdir(&unit("a"));
    fake.append(&unit_line(STOPPED, &unit("a")));
    assert!(wait_until(WAIT, || ids(&ns) == set(&[b])), "{}", d.log_text());
    // The stop message comes a moment before the directory goes: a later look catches it.
    fake.append(&unit_line(STOPPED, &unit("b")));
    std::thread::sleep(Duration::from_millis(100)); // the race being tested: message first, rmdir after
    tree.rmdir(&unit("b"));
    assert!(wait_until(WAIT, || ids(&ns).is_empty()), "{:?} {}", ids(&ns), d.log_text());

    // journalctl dies: it is started again, and a full scan finds what began meanwhile.
    let pid: i32 = starts[0].split(' ').next().and_then(|p| p.parse().ok()).expect("fake pid");
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    let c = tree.mkdir(&unit("c"));
    assert!(
        wait_until(Duration::from_secs(10), || fake.starts().len() == 2),
        "not restarted: {}",
        d.log_text()
    );
    assert!(wait_until(WAIT, || ids(&ns) == set(&[c])), "{:?} {}", ids(&ns), d.log_text());
    let status = d.ctl("status")["result"]["cgroups"].clone();
    assert_eq!(status["restarts"], 1, "{status}");
    assert!(d.log_text().contains("journalctl"), "the death is logged");
}

#[test]
#[ignore = "needs root (network and mount namespaces, cgroups, systemd-journald); `make test` runs it as root"]
fn journal_mode_with_a_private_journald_and_journalctl() {
    let Some(journald) = common::journald::PrivateJournald::start() else {
        panic!("systemd-journald is not installed (.ci/run installs systemd)");
    };
    let tree = Subtree::new("rj");
    let p = std::process::id();
    let unit = |n: &str| format!("nmr{p}-{n}.service");
    let ns = Netns::new("cgr");
    ns.nft("table inet filter {\n  set svc { typeof socket cgroupv2 level 2; }\n}\n");
    let config = format!(
        "cgroups:\n  root: {}\n  watch: journal\n  sets:\n    - {{ set: svc, units: [\"nmr{p}-*.service\"], level: 2 }}\n",
        tree.root.display()
    );
    let mnt = journald.mount_ns();
    let d = Daemon::spawn_env(&ns, &config, &[("NETMGRD_NSENTER", "1"), ("NETMGRD_MOUNTNS", &mnt)]);
    assert!(
        wait_until(WAIT, || d.try_ctl("status").is_some_and(|s| s["result"]["cgroups"]["ready"] == true)),
        "{}",
        d.log_text()
    );
    let a = tree.mkdir(&unit("a"));
    journald.log(STARTED, &unit("a"));
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a])), "{:?} {}", ids(&ns), d.log_text());
    // Restarted: a new cgroup, a new id; the set follows the messages.
    tree.rmdir(&unit("a"));
    journald.log(STOPPED, &unit("a"));
    assert!(wait_until(WAIT, || ids(&ns).is_empty()), "{}", d.log_text());
    let a2 = tree.mkdir(&unit("a"));
    journald.log(STARTED, &unit("a"));
    assert!(wait_until(WAIT, || ids(&ns) == set(&[a2])), "{}", d.log_text());
    assert_eq!(d.ctl("status")["result"]["cgroups"]["restarts"], 0, "journalctl kept running");
}

/// The nftables half of `import-scnpm` loads on top of the admin's ruleset (the sets are
/// declared with the level the rules name), and the daemon then fills the imported set.
#[test]
#[ignore = "needs root (network namespaces, cgroups); `make test` runs it as root"]
fn imported_scnpm_rules_load_and_the_set_is_filled() {
    let sample = format!("{}/tests/fixtures/scnpm/nftables.conf", env!("CARGO_MANIFEST_DIR"));
    let out =
        std::process::Command::new(netmgrd_bin()).args(["import-scnpm", &sample]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (_, nft) = text.split_once("# nftables\n").expect("nft part");
    let ns = Netns::new("scn");
    ns.nft(&std::fs::read_to_string(&sample).expect("sample"));
    ns.nft(nft);
    let listed = ns.sh("nft list chain inet filter vpn.whitelist");
    assert!(listed.contains("@vpn_whitelist_l2"), "{listed}");
    // The imported set, with a path of this test's own subtree: netmgrd fills it.
    let tree = Subtree::new("scn");
    let id = tree.mkdir("postfix.service");
    let config = format!(
        "cgroups:\n  root: {}\n  watch: inotify\n  sets:\n    - set: vpn_whitelist_l2\n      table: inet filter\n      level: 2\n      paths: [\"{}/postfix.service\"]\n",
        tree.root.display(),
        tree.name
    );
    let d = Daemon::spawn_env(&ns, &config, &[("NETMGRD_NSENTER", "1")]);
    assert!(
        wait_until(WAIT, || ns.set_elements("inet filter", "vpn_whitelist_l2").unwrap_or_default()
            == set(&[id])),
        "{}",
        d.log_text()
    );
}
