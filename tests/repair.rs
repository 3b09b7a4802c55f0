//! Foreign nftables changes are repaired from the nft monitor, with no address event and no
//! `resync`: the real binary in a private namespace, the real kernel, `nft` as the foreigner.

mod common;

use common::fake_engine::{FakeContainer, FakeEngine};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const RULESET: &str = "flush ruleset
table inet filter {
  set wan_ips { type ipv4_addr; }
  set wan_ipv6 { type ipv6_addr; }
  chain input { type filter hook input priority 0; policy accept; ip daddr @wan_ips tcp dport 22 drop; }
}
";

const CONFIG: &str = "interfaces:\n  - { name: wan0, zone: wan }\n";

fn elems(ns: &Netns, set: &str) -> BTreeSet<String> {
    ns.set_elements("inet filter", set).unwrap_or_default()
}

/// A namespace with the ruleset loaded, wan0 carrying two IPv4 and one IPv6 address, and
/// netmgrd running with the sets exact.
fn setup(tag: &str, config: &str) -> (Netns, Daemon) {
    let ns = Netns::new(tag);
    // No DAD: link-local addresses finishing it later would be real (if ignored) events.
    ns.sh("echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad");
    ns.nft(RULESET);
    ns.veth("wan0", "wan0p");
    ns.sh("ip addr add 203.0.113.1/24 dev wan0 && ip addr add 203.0.113.2/24 dev wan0 && ip -6 addr add 2001:db8::1/64 dev wan0 nodad");
    let d = Daemon::start(&ns, config);
    assert!(exact(&ns), "{}", d.log_text());
    (ns, d)
}

fn exact(ns: &Netns) -> bool {
    wait_until(WAIT, || {
        elems(ns, "wan_ips") == set_of(&["203.0.113.1", "203.0.113.2"])
            && elems(ns, "wan_ipv6") == set_of(&["2001:db8::1"])
    })
}

fn foreign(d: &Daemon) -> Value {
    d.ctl("status")["result"]["foreign_changes"].clone()
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn flush_ruleset_and_reload_is_repaired() {
    let (ns, d) = setup("rp-flush", CONFIG);
    // What `systemctl reload nftables` does: `nft -f` of a file that starts with `flush ruleset`.
    ns.nft(RULESET);
    assert!(exact(&ns), "{}", d.log_text());
    let f = foreign(&d);
    assert!(f["repaired"].as_u64() >= Some(1), "{f}");
    assert_eq!(f["last"]["process"], "nft", "{f}");
    assert!(d.log_text().contains("repairing a foreign change by pid"), "{}", d.log_text());
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn hand_deleted_and_foreign_elements_are_restored() {
    let (ns, d) = setup("rp-elem", CONFIG);
    ns.sh("nft delete element inet filter wan_ips { 203.0.113.1 }");
    assert!(exact(&ns), "{}", d.log_text());
    ns.sh("nft add element inet filter wan_ips { 198.51.100.99 } && nft add element inet filter wan_ipv6 { 2001:db8::99 }");
    assert!(exact(&ns), "{}", d.log_text());
    assert!(foreign(&d)["repaired"].as_u64() >= Some(2));
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn table_deleted_then_recreated_later_and_every_table_deleted() {
    let (ns, d) = setup("rp-table", CONFIG);
    ns.sh("nft delete table inet filter");
    assert!(wait_until(WAIT, || d.ctl("status")["result"]["zones"]["wan"]["sets"][0]["health"] == "missing"));
    ns.nft(RULESET);
    assert!(exact(&ns), "{}", d.log_text());
    assert_eq!(d.ctl("status")["result"]["zones"]["wan"]["sets"][0]["health"], "ok");
    // `service firewall stop`: every table goes; then the firewall starts again.
    ns.sh("nft flush ruleset");
    assert!(wait_until(WAIT, || d.ctl("status")["result"]["zones"]["wan"]["sets"][1]["health"] == "missing"));
    ns.nft(RULESET);
    assert!(exact(&ns), "{}", d.log_text());
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn ruleset_loaded_after_netmgrd_started_is_filled_at_once() {
    let ns = Netns::new("rp-late");
    ns.veth("wan0", "wan0p");
    ns.sh("ip addr add 203.0.113.1/24 dev wan0 && ip addr add 203.0.113.2/24 dev wan0 && ip -6 addr add 2001:db8::1/64 dev wan0 nodad");
    let d = Daemon::start(&ns, CONFIG);
    assert_eq!(d.ctl("status")["result"]["zones"]["wan"]["sets"][0]["health"], "missing");
    ns.nft(RULESET);
    assert!(exact(&ns), "{}", d.log_text());
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn fw4_restart_is_repaired_and_fw4_reload_causes_no_churn() {
    let fw4 = "table inet fw4 {
  set wan_ips { type ipv4_addr; }
  set wan_ipv6 { type ipv6_addr; }
  chain input { type filter hook input priority 0; policy accept; ip daddr @wan_ips tcp dport 22 drop; }
}
";
    let ns = Netns::new("rp-fw4");
    ns.nft(fw4);
    ns.veth("wan0", "wan0p");
    ns.sh("ip addr add 203.0.113.1/24 dev wan0 && ip -6 addr add 2001:db8::1/64 dev wan0 nodad");
    let config = "nftables: { table: inet fw4 }\ninterfaces:\n  - { name: wan0, zone: wan }\n";
    let d = Daemon::start(&ns, config);
    let fw4_exact = || {
        wait_until(WAIT, || {
            ns.set_elements("inet fw4", "wan_ips").unwrap_or_default() == set_of(&["203.0.113.1"])
                && ns.set_elements("inet fw4", "wan_ipv6").unwrap_or_default() == set_of(&["2001:db8::1"])
        })
    };
    assert!(fw4_exact(), "{}", d.log_text());
    // `fw4 restart`: the table is deleted and loaded again.
    ns.sh("nft delete table inet fw4");
    ns.nft(fw4);
    assert!(fw4_exact(), "{}", d.log_text());
    let before = d.ctl("status")["result"].clone();
    // `fw4 reload`: flush the table and declare it again; set elements stay.
    ns.nft(&format!("flush table inet fw4\n{fw4}"));
    // The commit's notifications are queued on netmgrd's monitor socket before `nft`
    // returns, so the turn that answers this status has handled them: nothing was sent.
    assert!(fw4_exact());
    let after = d.ctl("status")["result"].clone();
    assert_eq!(after["nft_batches"], before["nft_batches"], "{}", d.log_text());
    assert_eq!(after["foreign_changes"]["repaired"], before["foreign_changes"]["repaired"]);
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn owned_table_with_dnat_and_publish_is_rebuilt_after_a_foreign_delete() {
    let ns = Netns::new("rp-own");
    ns.nft(RULESET);
    let engine = FakeEngine::start(&ns.dir.join("docker.sock"));
    engine.put(FakeContainer::new("a1", "web").net("n", "198.18.9.2", "").port("80/tcp", "0.0.0.0", "8080"));
    let config = format!(
        "interfaces: [{{ name: wan0, zone: wan }}]\ndocker: {{ socket: {}, publish: true }}\nnat:\n  dnat:\n    - {{ in_interface: wan0, proto: tcp, port: 2222, to: \"192.0.2.10:22\" }}\n",
        engine.path.display()
    );
    let d = Daemon::start(&ns, &config);
    let complete = || {
        wait_until(WAIT, || {
            ns.set_elements("inet netmgrd", "publish4").unwrap_or_default().len() == 1
                && ns.set_elements("inet netmgrd", "dnat4").unwrap_or_default().len() == 1
                && ns
                    .sh("nft list table inet netmgrd")
                    .matches("dnat ip to meta l4proto . th dport map @publish4 ")
                    .count()
                    == 2
        })
    };
    assert!(complete(), "{}", d.log_text());
    ns.sh("nft delete table inet netmgrd");
    assert!(complete(), "{}", d.log_text());
    assert_eq!(foreign(&d)["last"]["rebuilt_table"], Value::Bool(true));
    // A foreign rule in the owned table goes too (netmgrd owns the whole table).
    ns.sh("nft add rule inet netmgrd forward drop");
    assert!(
        wait_until(WAIT, || !ns.sh("nft list chain inet netmgrd forward").contains("\t\tdrop\n")),
        "{}",
        ns.sh("nft list table inet netmgrd")
    );
    assert!(complete());
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn sixty_reloads_during_200_address_changes_end_exact_then_idle() {
    let (ns, d) = setup("rp-storm", CONFIG);
    let script = ns.dir.join("addrs.batch");
    let lines: String =
        (0..200).map(|i| format!("addr add 198.18.{}.{}/16 dev wan0\n", i / 200, 10 + i % 200)).collect();
    std::fs::write(&script, lines).expect("batch");
    let ruleset = ns.dir.join("ruleset.nft");
    std::fs::write(&ruleset, RULESET).expect("ruleset");
    let reloads = format!("for i in $(seq 60); do nft -f {}; done", ruleset.display());
    let ns_name = ns.name.clone();
    let storm = std::thread::spawn(move || {
        std::process::Command::new("ip").args(["netns", "exec", &ns_name, "sh", "-c", &reloads]).status()
    });
    ns.sh(&format!("ip -batch {}", script.display()));
    assert!(storm.join().expect("reload thread").expect("nft loop").success());
    let mut want: BTreeSet<String> =
        (0..200).map(|i| format!("198.18.{}.{}", i / 200, 10 + i % 200)).collect();
    want.extend(["203.0.113.1".to_string(), "203.0.113.2".to_string()]);
    assert!(wait_until(Duration::from_secs(10), || elems(&ns, "wan_ips") == want), "{}", d.log_text());
    assert_eq!(elems(&ns, "wan_ipv6"), set_of(&["2001:db8::1"]));
    // Quiet again: no wake-ups at all (own commits never cause work, nothing polls).
    let pid = d.pid();
    let switches = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>()
    };
    // Quiet first: the count stops moving once the churn's last turn is done.
    let mut last = switches();
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::thread::sleep(Duration::from_millis(100));
            let now = switches();
            std::mem::replace(&mut last, now) == now
        }),
        "netmgrd never went quiet"
    );
    let before = switches();
    let log_before = d.log_text().len();
    std::thread::sleep(Duration::from_secs(3));
    let log = d.log_text();
    assert_eq!(switches(), before, "netmgrd woke up while nothing happened: {}", &log[log_before..]);
}

/// `nftables.owned_table` naming a table someone else made: netmgrd leaves it alone (no
/// replace at start, no delete at exit) and says why in `status`.
#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn a_foreign_table_with_the_owned_name_is_never_replaced() {
    let ns = Netns::new("rp-foreign");
    let admins = "table inet netmgrd {\n  set mine { type ipv4_addr; elements = { 192.0.2.1 } }\n  chain input { type filter hook input priority 0; policy accept; }\n}\n";
    ns.nft(admins);
    let config = "nftables: { on_exit: flush }\nnat:\n  dnat:\n    - { in_interface: wan0, proto: tcp, port: 2222, to: \"192.0.2.10:22\" }\n";
    let mut d = Daemon::start(&ns, config);
    let err = d.ctl("status")["result"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("was not created by netmgrd"), "{err}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(WAIT), Some(0));
    assert_eq!(ns.set_elements("inet netmgrd", "mine"), Some(set_of(&["192.0.2.1"])));
    assert!(ns.sh("nft list table inet netmgrd").contains("chain input"));
    // A table netmgrd built carries its mark, visible to the admin.
    ns.sh("nft delete table inet netmgrd");
    let d = Daemon::start(&ns, config);
    assert!(wait_until(WAIT, || ns.set_elements("inet netmgrd", "dnat4").unwrap_or_default().len() == 1));
    assert!(
        ns.sh("nft list table inet netmgrd").contains("comment \"netmgrd owned table\""),
        "{}",
        d.log_text()
    );
}
