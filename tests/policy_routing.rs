//! Policy routing on a router with two uplinks: three namespaces (the router running netmgrd,
//! an upstream that drops what it gets, a client behind the second uplink), real packets.

mod common;

use common::*;

struct Net {
    r: Netns,
    c: Netns,
    _u: Netns,
}

/// R: eth0 -> U (main default route, metric 100), eth1 -> C (default metric 200). C's own
/// address is off-link (203.0.113.50, 2001:db8:99::50), so R answers it by its routing table.
fn topology(tag: &str) -> Net {
    let (r, c, u) =
        (Netns::new(&format!("{tag}r")), Netns::new(&format!("{tag}c")), Netns::new(&format!("{tag}u")));
    let host = |cmd: &str| {
        let out = std::process::Command::new("sh").args(["-c", cmd]).output().expect("sh");
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    };
    host(&format!("ip link add eth0 netns {} type veth peer name up0 netns {}", r.name, u.name));
    host(&format!("ip link add eth1 netns {} type veth peer name c0 netns {}", r.name, c.name));
    r.sh("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
         net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0 && \
         ip link set eth0 up && ip link set eth1 up && \
         ip addr add 192.0.2.1/24 dev eth0 && ip addr add 198.51.100.1/24 dev eth1 && \
         ip addr add 2001:db8::1/64 dev eth0 nodad && ip addr add 2001:db8:1::1/64 dev eth1 nodad && \
         ip route add default via 192.0.2.2 dev eth0 metric 100 && \
         ip route add default via 198.51.100.2 dev eth1 metric 200 && \
         ip -6 route add default via 2001:db8::2 dev eth0 metric 100 && \
         ip -6 route add default via 2001:db8:1::2 dev eth1 metric 200");
    u.sh(
        "ip link set up0 up && ip addr add 192.0.2.2/24 dev up0 && ip addr add 2001:db8::2/64 dev up0 nodad",
    );
    c.sh(
        "ip link set c0 up && ip addr add 198.51.100.2/24 dev c0 && ip addr add 2001:db8:1::2/64 dev c0 nodad && \
         ip addr add 203.0.113.50/32 dev lo && ip addr add 2001:db8:99::50/128 dev lo",
    );
    Net { r, c, _u: u }
}

fn ping4(c: &Netns) -> bool {
    c.try_sh("ping -n -c1 -W1 -I 203.0.113.50 198.51.100.1").status.success()
}

fn ping6(c: &Netns) -> bool {
    c.try_sh("ping -6 -n -c1 -W1 -I 2001:db8:99::50 2001:db8:1::1").status.success()
}

const CONFIG: &str =
    "policy_routing:\n  - { interface: eth1, table: 10002, priority: 1000, gateway: auto }\n";

fn rules(r: &Netns, family: &str, table: u32) -> Vec<String> {
    r.sh(&format!("ip {family} rule show"))
        .lines()
        .filter(|l| l.contains(&format!("lookup {table}")))
        .map(|l| l.trim().to_string())
        .collect()
}

fn routes(r: &Netns, family: &str, table: u32) -> Vec<String> {
    r.sh(&format!("ip {family} route show table {table}")).lines().map(|l| l.trim().to_string()).collect()
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn replies_leave_through_the_interface_they_came_in_on_ipv4_and_ipv6() {
    let net = topology("pr");
    // Without netmgrd the replies follow the main default route out of eth0, and are lost.
    assert!(!ping4(&net.c), "without policy routing the IPv4 reply must not come back");
    assert!(!ping6(&net.c), "without policy routing the IPv6 reply must not come back");
    let d = Daemon::start(&net.r, CONFIG);
    assert!(
        wait_until(WAIT, || rules(&net.r, "-4", 10002).len() == 2 && rules(&net.r, "-6", 10002).len() == 2),
        "{}",
        d.log_text()
    );
    assert!(
        rules(&net.r, "-4", 10002).iter().any(|l| l.contains("from 198.51.100.1 lookup 10002 proto 233")),
        "{:?}",
        rules(&net.r, "-4", 10002)
    );
    assert!(rules(&net.r, "-4", 10002).iter().any(|l| l.contains("to 198.51.100.1 lookup 10002")));
    assert!(
        wait_until(WAIT, || routes(&net.r, "-4", 10002)
            .iter()
            .any(|l| l.starts_with("default via 198.51.100.2 dev eth1"))),
        "{:?}",
        routes(&net.r, "-4", 10002)
    );
    assert!(routes(&net.r, "-4", 10002).iter().any(|l| l.starts_with("198.51.100.0/24 dev eth1")));
    assert!(
        wait_until(WAIT, || routes(&net.r, "-6", 10002)
            .iter()
            .any(|l| l.starts_with("default via 2001:db8:1::2 dev eth1"))),
        "{:?}",
        routes(&net.r, "-6", 10002)
    );
    assert!(wait_until(WAIT, || ping4(&net.c)), "IPv4 reply through eth1; {}", d.log_text());
    assert!(wait_until(WAIT, || ping6(&net.c)), "IPv6 reply through eth1; {}", d.log_text());
    let status = d.ctl("status")["result"]["policy_routing"].clone();
    assert_eq!(status["rules"], 4, "{status}");
    assert!(status["error"].is_null(), "{status}");
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn routes_d_runs_when_the_routes_of_a_policy_interface_change() {
    let net = topology("prh");
    let dir = net.r.dir.join("hooks");
    let log = net.r.dir.join("routes.log");
    std::fs::create_dir_all(dir.join("routes.d")).expect("mkdir");
    let script = dir.join("routes.d/50-log.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$LINK|$STATE|$ROUTES\" >> {}\n", log.display()))
        .expect("hook");
    std::process::Command::new("chmod").arg("+x").arg(&script).status().expect("chmod");
    let config = format!("{CONFIG}hooks:\n  dir: {}\n", dir.display());
    let d = Daemon::start(&net.r, &config);
    assert!(wait_until(WAIT, || rules(&net.r, "-4", 10002).len() == 2), "{}", d.log_text());
    net.r.sh("ip route add 203.0.113.0/24 via 198.51.100.2 dev eth1");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(WAIT, || read()
            .lines()
            .any(|l| l.starts_with("eth1|configured|") && l.contains("203.0.113.0/24 via 198.51.100.2"))),
        "{:?} {}",
        read(),
        d.log_text()
    );
    // Removed: routes.d runs again without it.
    net.r.sh("ip route del 203.0.113.0/24 via 198.51.100.2 dev eth1");
    assert!(
        wait_until(WAIT, || read()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("eth1|configured|") && !l.contains("203.0.113.0/24"))),
        "{:?}",
        read()
    );
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn a_restart_after_kill_9_keeps_one_copy_removes_stale_entries_and_address_removal_removes_rules() {
    let net = topology("pk");
    let mut d = Daemon::start(&net.r, CONFIG);
    assert!(
        wait_until(WAIT, || rules(&net.r, "-6", 10002).len() == 2 && routes(&net.r, "-4", 10002).len() == 2),
        "{}",
        d.log_text()
    );
    let before = (
        rules(&net.r, "-4", 10002),
        rules(&net.r, "-6", 10002),
        routes(&net.r, "-4", 10002),
        routes(&net.r, "-6", 10002),
    );
    d.signal("KILL");
    d.wait_exit(WAIT);
    assert!(d.child.is_none(), "netmgrd did not die");
    let _ = std::fs::remove_file(&d.socket);
    // What a crashed run of netmgrd left (its protocol), and someone else's rule.
    net.r.sh("ip rule add from 192.0.2.99 lookup 5555 pref 1000 proto 233 && ip rule add from 192.0.2.98 lookup 5556 pref 1001");
    net.r.sh("ip route add 203.0.113.0/24 via 198.51.100.2 dev eth1 table 10002 proto 233");
    let d = Daemon::start(&net.r, CONFIG);
    assert!(
        wait_until(WAIT, || rules(&net.r, "-4", 5555).is_empty()),
        "stale rule of ours stays: {}",
        d.log_text()
    );
    assert!(
        wait_until(WAIT, || !routes(&net.r, "-4", 10002).iter().any(|l| l.starts_with("203.0.113.0/24"))),
        "{:?}",
        routes(&net.r, "-4", 10002)
    );
    assert_eq!(rules(&net.r, "-4", 5556).len(), 1, "another's rule is left alone");
    let after = (
        rules(&net.r, "-4", 10002),
        rules(&net.r, "-6", 10002),
        routes(&net.r, "-4", 10002),
        routes(&net.r, "-6", 10002),
    );
    assert_eq!(after, before, "exactly one copy of each rule and route");
    assert!(wait_until(WAIT, || ping4(&net.c)));
    // The address goes: its rules and the table's IPv4 routes go; IPv6 stays.
    net.r.sh("ip addr del 198.51.100.1/24 dev eth1");
    assert!(
        wait_until(WAIT, || rules(&net.r, "-4", 10002).is_empty() && routes(&net.r, "-4", 10002).is_empty()),
        "{:?} {:?}",
        rules(&net.r, "-4", 10002),
        routes(&net.r, "-4", 10002)
    );
    assert_eq!(rules(&net.r, "-6", 10002).len(), 2);
    assert!(wait_until(WAIT, || ping6(&net.c)), "IPv6 still answered through eth1");
}
