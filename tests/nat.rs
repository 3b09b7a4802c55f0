//! NAT and forward policies with real packets: client (WAN side), router (netmgrd) and
//! server (LAN side) namespaces joined by veth pairs; tiny socat servers answer with the
//! peer address they saw, so translation is checked on the wire, not in rule listings.

mod common;

use common::*;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Lab {
    client: Netns,
    router: Netns,
    server: Netns,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let client = Netns::new(&format!("{tag}-c"));
        let router = Netns::new(&format!("{tag}-r"));
        let server = Netns::new(&format!("{tag}-s"));
        for ns in [&client, &router, &server] {
            ns.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        }
        router.sh(&format!(
            "ip link add wan0 type veth peer name c0 netns {} && ip link add lan0 type veth peer name s0 netns {}",
            client.name, server.name
        ));
        router.sh("ip link set wan0 up && ip link set lan0 up && ip addr add 203.0.113.1/24 dev wan0 && ip addr add 2001:db8:1::1/64 dev wan0 nodad && ip addr add 192.0.2.1/24 dev lan0 && ip addr add 2001:db8:2::1/64 dev lan0 nodad");
        // The client knows no route to the LAN: only what the router publishes is reachable,
        // unless a test adds the route to try plain forwarding.
        client.sh("ip link set c0 up && ip addr add 203.0.113.2/24 dev c0 && ip addr add 2001:db8:1::2/64 dev c0 nodad");
        server.sh("ip link set s0 up && ip addr add 192.0.2.10/24 dev s0 && ip addr add 2001:db8:2::10/64 dev s0 nodad && ip route add default via 192.0.2.1 && ip -6 route add default via 2001:db8:2::1");
        Lab { client, router, server, children: Vec::new() }
    }

    /// A server in `ns` answering every connection with the peer address it saw.
    fn serve(&mut self, which: &str, listen: &str) {
        let ns = match which {
            "client" => &self.client,
            "server" => &self.server,
            _ => &self.router,
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "socat", listen, "SYSTEM:echo $SOCAT_PEERADDR"])
            .spawn()
            .expect("socat");
        self.children.push(child);
    }

    fn wait_listening(ns: &Netns, port: u16, udp: bool) {
        let flag = if udp { "-lun" } else { "-ltn" };
        assert!(
            wait_until(WAIT, || ns.sh(&format!("ss {flag}")).contains(&format!(":{port} "))),
            "port {port}"
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One exchange from `ns`; the peer address the server saw, canonical ("" when nothing came
/// back). socat prints IPv6 peers expanded and in brackets.
fn ask(ns: &Netns, target: &str) -> String {
    // TCP: only read, so the client never half-closes before the server has answered (socat
    // would then drop the answer). UDP needs a datagram for the server to learn the peer.
    let cmd = if target.starts_with("UDP") {
        format!("echo x | timeout 3 socat -T1 - {target}")
    } else {
        format!("timeout 3 socat -u {target} -")
    };
    let out = ns.try_sh(&cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").trim();
    let bare = first.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(a) => a.to_string(),
        Err(_) => first.to_string(),
    }
}

const BASE: &str = "interfaces:
  - { name: wan0, zone: wan }
  - { name: lan0, zone: lan }
";

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn dnat_ipv4_ipv6_port_range_and_hairpin() {
    let mut lab = Lab::new("nat-dnat");
    lab.router.sh("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0");
    lab.serve("server", "TCP4-LISTEN:80,fork,reuseaddr");
    lab.serve("server", "TCP6-LISTEN:5000,fork,reuseaddr,ipv6only=1");
    lab.serve("server", "UDP6-LISTEN:5000,fork,reuseaddr,ipv6only=1");
    Lab::wait_listening(&lab.server, 80, false);
    Lab::wait_listening(&lab.server, 5000, true);
    let config = format!(
        "{BASE}nat:
  enable_forwarding: true
  dnat:
    - {{ in_zone: wan, proto: tcp, port: 8080, to: \"192.0.2.10:80\", hairpin: true, comment: web }}
    - {{ in_interface: wan0, proto: both, port: \"5000-5010\", to: \"[2001:db8:2::10]:5000\" }}
"
    );
    let d = Daemon::start(&lab.router, &config);
    assert_eq!(lab.router.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1", "enable_forwarding");
    // The client's address arrives untouched at the server.
    assert!(
        wait_until(WAIT, || ask(&lab.client, "TCP4:203.0.113.1:8080").starts_with("203.0.113.2")),
        "{}",
        d.log_text()
    );
    assert!(ask(&lab.client, "TCP6:[2001:db8:1::1]:5000").starts_with("2001:db8:1::2"));
    assert!(ask(&lab.client, "TCP6:[2001:db8:1::1]:5010").starts_with("2001:db8:1::2"), "top of the range");
    assert_eq!(ask(&lab.client, "TCP6:[2001:db8:1::1]:5011"), "", "outside the range");
    // UDP may lose a datagram; a retry within the deadline is fair.
    assert!(
        wait_until(WAIT, || ask(&lab.client, "UDP6:[2001:db8:1::1]:5003").starts_with("2001:db8:1::2")),
        "udp"
    );
    assert_eq!(ask(&lab.client, "TCP4:203.0.113.1:8081"), "", "other ports are not forwarded");
    // Hairpin: a LAN host uses the public address; masqueraded so the reply comes back
    // through the router, which the server sees as the source.
    assert!(ask(&lab.server, "TCP4:203.0.113.1:8080").starts_with("192.0.2.1"), "{}", d.log_text());
    // The public address follows the WAN interface: a new one works without a rule change.
    lab.router.sh("ip addr add 203.0.113.50/24 dev wan0");
    assert!(
        wait_until(WAIT, || ask(&lab.server, "TCP4:203.0.113.50:8080").starts_with("192.0.2.1")),
        "{}",
        d.log_text()
    );
    let ruleset = d.ctl("ruleset")["result"].as_str().unwrap().to_string();
    assert!(ruleset.contains("comment \"nat.dnat[0] ("), "{ruleset}");
    assert!(
        ruleset.contains("add element inet netmgrd addr_wan_4 { 203.0.113.1, 203.0.113.50 }"),
        "{ruleset}"
    );
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn masquerade_and_snat_are_seen_by_the_peer() {
    let mut lab = Lab::new("nat-src");
    lab.router.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    lab.serve("client", "TCP4-LISTEN:9000,fork,reuseaddr");
    lab.serve("client", "TCP6-LISTEN:9000,fork,reuseaddr,ipv6only=1");
    Lab::wait_listening(&lab.client, 9000, false);
    let config = format!(
        "{BASE}nat:
  masquerade:
    - {{ out_zone: wan, source: 192.0.2.0/24 }}
  snat:
    - {{ out_interface: wan0, source: \"2001:db8:2::/64\", to: \"2001:db8:1::77\" }}
"
    );
    let d = Daemon::start(&lab.router, &config);
    lab.router.sh("ip -6 addr add 2001:db8:1::77/64 dev wan0 nodad");
    assert!(
        wait_until(WAIT, || ask(&lab.server, "TCP4:203.0.113.2:9000").starts_with("203.0.113.1")),
        "{}",
        d.log_text()
    );
    assert!(ask(&lab.server, "TCP6:[2001:db8:1::2]:9000").starts_with("2001:db8:1::77"), "{}", d.log_text());
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn forward_policy_and_rules_accept_and_drop() {
    let mut lab = Lab::new("nat-fwd");
    lab.router.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    lab.client
        .sh("ip route add 192.0.2.0/24 via 203.0.113.1 && ip -6 route add 2001:db8:2::/64 via 2001:db8:1::1");
    for port in [7000, 7001, 7002] {
        lab.serve("server", &format!("TCP4-LISTEN:{port},fork,reuseaddr"));
    }
    lab.serve("server", "TCP6-LISTEN:7001,fork,reuseaddr,ipv6only=1");
    lab.serve("client", "TCP4-LISTEN:9000,fork,reuseaddr");
    Lab::wait_listening(&lab.server, 7002, false);
    Lab::wait_listening(&lab.client, 9000, false);
    let config = format!(
        "{BASE}nat:
  forward_policy: drop
  forward:
    - {{ from: lan, to: wan, action: accept }}
    - {{ from: wan, to: 192.0.2.10/32, proto: tcp, port: 7001, action: accept }}
    - {{ from: wan, to: \"2001:db8:2::/64\", proto: tcp, port: 7001, action: accept }}
    - {{ from: 203.0.113.2/32, proto: tcp, port: 7002, action: drop }}
"
    );
    let d = Daemon::start(&lab.router, &config);
    assert!(
        wait_until(WAIT, || ask(&lab.client, "TCP4:192.0.2.10:7001").starts_with("203.0.113.2")),
        "{}",
        d.log_text()
    );
    assert!(ask(&lab.client, "TCP6:[2001:db8:2::10]:7001").starts_with("2001:db8:1::2"));
    assert_eq!(ask(&lab.client, "TCP4:192.0.2.10:7000"), "", "not allowed: policy drop");
    assert_eq!(ask(&lab.client, "TCP4:192.0.2.10:7002"), "", "explicit drop");
    assert!(
        ask(&lab.server, "TCP4:203.0.113.2:9000").starts_with("192.0.2.10"),
        "lan -> wan accepted, replies come back"
    );
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn reload_is_atomic_and_kill_9_restart_leaves_one_copy() {
    let mut lab = Lab::new("nat-atomic");
    lab.serve("server", "TCP4-LISTEN:80,fork,reuseaddr");
    lab.serve("server", "TCP4-LISTEN:81,fork,reuseaddr");
    Lab::wait_listening(&lab.server, 81, false);
    let config = |extra_port: u16| {
        format!(
            "{BASE}nat:
  enable_forwarding: true
  forward_policy: drop
  dnat:
    - {{ in_zone: wan, proto: tcp, port: 8080, to: \"192.0.2.10:80\" }}
  forward:
    - {{ from: wan, to: 192.0.2.10/32, proto: tcp, port: {extra_port}, action: accept }}
"
        )
    };
    let mut d = Daemon::start(&lab.router, &config(1000));
    assert!(wait_until(WAIT, || ask(&lab.client, "TCP4:203.0.113.1:8080").starts_with("203.0.113.2")));

    // A connection loop through the port forward while the forward rules are reloaded over
    // and over: the table is swapped in one transaction, so no connection may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let loop_ns = lab.client.name.clone();
    let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
    let looper = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            let out = Command::new("ip")
                .args(["netns", "exec", &loop_ns, "sh", "-c", "timeout 3 socat -u TCP4:203.0.113.1:8080 -"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).starts_with("203.0.113.2") {
                o.fetch_add(1, Ordering::SeqCst);
            } else {
                f.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let t = Instant::now();
    let mut reloads = 0;
    while t.elapsed() < Duration::from_secs(3) {
        reloads += 1;
        std::fs::write(&d.config, config(1000 + reloads)).unwrap();
        assert_eq!(d.ctl("reload")["ok"], serde_json::Value::Bool(true), "{}", d.log_text());
    }
    stop.store(true, Ordering::SeqCst);
    looper.join().unwrap();
    assert!(ok.load(Ordering::SeqCst) >= 10, "the loop ran: {}", ok.load(Ordering::SeqCst));
    assert_eq!(failed.load(Ordering::SeqCst), 0, "connections lost during {reloads} reloads");
    let listing = lab.router.sh("nft list table inet netmgrd");
    assert!(listing.contains(&format!("dport {} accept", 1000 + reloads)), "{listing}");
    assert_eq!(listing.matches("comment \"nat.forward[0]").count(), 1, "{listing}");
    assert_eq!(listing.matches("\"wan0\" . tcp . 8080 : 192.0.2.10 . 80").count(), 1, "{listing}");

    // kill -9: nothing cleans up; the next start replaces the table whole.
    let pid = d.pid();
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    d.wait_exit(Duration::from_secs(2));
    let _ = std::fs::remove_file(&d.socket);
    let d2 = Daemon::start(&lab.router, &config(2000));
    let listing = lab.router.sh("nft list table inet netmgrd");
    assert_eq!(listing.matches("comment \"nat.dnat single ports (map dnat4)").count(), 1, "{listing}");
    assert_eq!(listing.matches("\"wan0\" . tcp . 8080 : 192.0.2.10 . 80").count(), 1, "{listing}");
    assert_eq!(listing.matches("comment \"nat.forward[0]").count(), 1, "{listing}");
    assert!(listing.contains("dport 2000 accept"), "{listing}");
    assert_eq!(lab.router.sh("nft list tables").matches("netmgrd").count(), 1);
    assert!(ask(&lab.client, "TCP4:203.0.113.1:8080").starts_with("203.0.113.2"), "{}", d2.log_text());
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn check_print_is_accepted_by_nft() {
    let ns = Netns::new("nat-print");
    let config = ns.dir.join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "{BASE}nat:
  forward_policy: drop
  dnat:
    - {{ in_zone: wan, proto: both, port: [80, \"8000-8010\"], to: \"192.0.2.10\", hairpin: true, comment: \"say \\\"hi\\\"\" }}
    - {{ in_interface: wan0, port: 443, to: \"[2001:db8:2::10]:8443\", hairpin: true }}
  masquerade:
    - {{ out_zone: wan }}
  snat:
    - {{ out_interface: wan0, source: 198.51.100.0/24, to: 203.0.113.9 }}
  forward:
    - {{ from: lan, to: wan, action: accept }}
    - {{ from: lan_ips, to: \"198.51.100.0/24\", action: drop }}
docker: {{ socket: /nonexistent, publish: true }}
"
        ),
    )
    .unwrap();
    let out = Command::new(common::netmgrd_bin())
        .args(["check", "--print", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let file = ns.dir.join("print.nft");
    std::fs::write(&file, &text).unwrap();
    ns.sh(&format!("nft -c -f {}", file.display()));
    // And it loads for real, twice (replacing itself).
    ns.sh(&format!("nft -f {f} && nft -f {f}", f = file.display()));
    assert!(ns.sh("nft list table inet netmgrd").contains("say 'hi'"));
}

#[test]
fn bad_forward_endpoint_is_a_located_config_error() {
    let dir = std::env::temp_dir().join(format!("nat-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.yaml");
    std::fs::write(&config, format!("{BASE}nat:\n  forward:\n    - {{ from: lan, action: accept }}\n    - {{ from: \"container:nope\", action: drop }}\n")).unwrap();
    let out = Command::new(common::netmgrd_bin()).args(["check", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("{}:7:1: nat.forward[1]: `container:nope`", config.display())), "{err}");
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn a_rule_the_kernel_refuses_names_its_entry_and_keeps_the_old_table() {
    let mut lab = Lab::new("nat-refuse");
    lab.serve("server", "TCP4-LISTEN:80,fork,reuseaddr");
    Lab::wait_listening(&lab.server, 80, false);
    let good = format!(
        "{BASE}nat:\n  dnat:\n    - {{ in_zone: wan, proto: tcp, port: 8080, to: \"192.0.2.10:80\" }}\n"
    );
    let d = Daemon::start(&lab.router, &good);
    assert!(wait_until(WAIT, || ask(&lab.client, "TCP4:203.0.113.1:8080").starts_with("203.0.113.2")));
    // The kernel compares at most 16 bytes of an interface name: this rule is refused.
    let bad = format!("{good}  masquerade:\n    - {{ out_interface: averyveryverylonginterfacename, source: 192.0.2.0/24 }}\n");
    std::fs::write(&d.config, bad).unwrap();
    let reply = d.ctl("reload");
    assert_eq!(reply["ok"], serde_json::Value::Bool(false));
    let err = reply["error"].as_str().unwrap();
    assert!(err.contains(&format!("nat.masquerade[0] ({}:8)", d.config.display())), "{err}");
    assert!(d.log_text().contains("the previous table stays in force"));
    // Still the old table and the old config.
    assert!(ask(&lab.client, "TCP4:203.0.113.1:8080").starts_with("203.0.113.2"));
    assert!(!lab.router.sh("nft list table inet netmgrd").contains("masquerade"));
    assert_eq!(d.ctl("status")["result"]["reloads"], 0);
}
