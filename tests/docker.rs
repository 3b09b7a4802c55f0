//! Docker integration against a test Engine that speaks real HTTP/1.1 with chunked events.
//! netmgrd runs in a private network namespace; the Engine socket is a file in the test's
//! directory.

mod common;

use common::fake_engine::{FakeContainer, FakeEngine};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const RULESET: &str = "table inet filter {
  set web4 { type ipv4_addr; }
  set web6 { type ipv6_addr; }
  set front4 { type ipv4_addr; }
  set shop4 { type ipv4_addr; }
}
";

fn config(socket: &std::path::Path) -> String {
    format!(
        "docker:
  socket: {}
  sets:
    - ipv4_set: web4
      ipv6_set: web6
      match: {{ labels: {{ app: web }}, names: [\"web-*\"] }}
    - ipv4_set: front4
      match: {{ networks: [front] }}
    - ipv4_set: shop4
      match: {{ compose_project: shop }}
",
        socket.display()
    )
}

fn elems(ns: &Netns, set: &str) -> BTreeSet<String> {
    ns.set_elements("inet filter", set).unwrap_or_default()
}

fn web(name: &str, v4: &str, v6: &str) -> FakeContainer {
    FakeContainer::new(name, name).label("app", "web").net("back", v4, v6)
}

fn setup(tag: &str) -> (Netns, FakeEngine) {
    let ns = Netns::new(tag);
    ns.nft(RULESET);
    let engine = FakeEngine::start(&ns.dir.join("docker.sock"));
    (ns, engine)
}

fn docker_status(d: &Daemon) -> Value {
    d.ctl("status")["result"]["docker"].clone()
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn containers_follow_start_stop_pause_destroy_and_matching() {
    let (ns, engine) = setup("dk-life");
    // Running before netmgrd starts: found by the initial sync.
    engine.put(web("web-1", "198.18.1.2", "2001:db8:b::2"));
    engine.put(FakeContainer::new("db-1", "db-1").label("app", "db").net("back", "198.18.1.3", ""));
    engine.put(FakeContainer::new("web-x", "other").label("app", "web").net("back", "198.18.1.4", ""));
    ns.nft("add element inet filter web4 { 198.51.100.200 }\n");
    let d = Daemon::start(&ns, &config(&engine.path));
    assert!(wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.1.2"])), "{}", d.log_text());
    assert_eq!(elems(&ns, "web6"), set_of(&["2001:db8:b::2"]));

    engine.run(web("web-2", "198.18.1.5", ""));
    assert!(
        wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.1.2", "198.18.1.5"])),
        "{}",
        d.log_text()
    );
    engine.pause("web-1", true);
    assert!(wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.1.5"])));
    assert!(wait_until(WAIT, || elems(&ns, "web6").is_empty()));
    engine.pause("web-1", false);
    assert!(wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.1.2", "198.18.1.5"])));
    engine.stop_container("web-2");
    assert!(wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.1.2"])));
    engine.remove("web-2");
    engine.stop_container("web-1");
    engine.remove("web-1");
    assert!(wait_until(WAIT, || elems(&ns, "web4").is_empty()), "{}", d.log_text());

    // `health_status: healthy` and friends are ignored (the part before ':' is compared).
    engine.container_event("health_status: healthy", &engine.id_of("db-1"), "db-1");
    let st = docker_status(&d);
    assert_eq!(st["state"], "connected");
    assert_eq!(st["api_version"], "1.41");
    assert!(st["last_event_unix"].as_u64().is_some());
    // Versioned paths after negotiation, and the event filter.
    let reqs = engine.requests();
    assert_eq!(reqs[0], "GET /version");
    assert!(reqs.iter().any(|r| r.starts_with("GET /v1.41/events?filters=%7B%22type%22")), "{reqs:?}");
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn network_connect_and_disconnect_and_compose_project() {
    let (ns, engine) = setup("dk-net");
    let d = Daemon::start(&ns, &config(&engine.path));
    assert!(wait_until(WAIT, || docker_status(&d)["state"] == "connected"));
    engine.run(
        FakeContainer::new("shop-api-1", "shop-api-1").label("com.docker.compose.project", "shop").net(
            "back",
            "198.18.2.2",
            "",
        ),
    );
    assert!(wait_until(WAIT, || elems(&ns, "shop4") == set_of(&["198.18.2.2"])), "{}", d.log_text());
    assert!(elems(&ns, "front4").is_empty());
    engine.connect("shop-api-1", "front", "198.18.3.2", "2001:db8:f::2");
    assert!(wait_until(WAIT, || elems(&ns, "front4") == set_of(&["198.18.3.2"])));
    assert!(wait_until(WAIT, || elems(&ns, "shop4") == set_of(&["198.18.2.2", "198.18.3.2"])));
    engine.disconnect("shop-api-1", "front");
    assert!(wait_until(WAIT, || elems(&ns, "front4").is_empty()));
    assert!(wait_until(WAIT, || elems(&ns, "shop4") == set_of(&["198.18.2.2"])));

    let list = d.ctl("containers");
    let c = &list["result"][0];
    assert_eq!(c["name"], "shop-api-1");
    assert_eq!(c["networks"]["back"]["ipv4"], "198.18.2.2");
    assert_eq!(c["sets"][0], "inet filter shop4");
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn engine_restart_mid_stream_reconnects_and_resyncs() {
    let (ns, engine) = setup("dk-restart");
    engine.put(web("web-1", "198.18.4.2", ""));
    engine.put(web("web-2", "198.18.4.3", ""));
    let d = Daemon::start(&ns, &config(&engine.path));
    assert!(wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.4.2", "198.18.4.3"])));
    // dockerd goes away; while it is gone web-2 stops and web-3 starts, unseen.
    engine.shutdown();
    assert!(wait_until(WAIT, || docker_status(&d)["state"] == "disconnected"), "{}", d.log_text());
    let engine = {
        let e = FakeEngine::start(&engine.path);
        e.put(web("web-1", "198.18.4.2", ""));
        e.put(web("web-3", "198.18.4.4", ""));
        e
    };
    assert!(
        wait_until(Duration::from_secs(10), || elems(&ns, "web4") == set_of(&["198.18.4.2", "198.18.4.4"])),
        "{}",
        d.log_text()
    );
    let st = docker_status(&d);
    assert_eq!(st["state"], "connected");
    assert!(st["reconnects"].as_u64().unwrap() >= 1, "{st}");
    // And it follows events again.
    engine.run(web("web-4", "198.18.4.5", ""));
    assert!(wait_until(WAIT, || elems(&ns, "web4").contains("198.18.4.5")));
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn engine_absent_at_start_then_appearing() {
    let ns = Netns::new("dk-absent");
    ns.nft(RULESET);
    ns.nft("add element inet filter web4 { 198.51.100.9 }\n");
    let sock = ns.dir.join("docker.sock");
    let d = Daemon::start(&ns, &config(&sock));
    let st = docker_status(&d);
    assert_eq!(st["state"], "disconnected", "{st}");
    assert!(st["error"].as_str().unwrap().contains("docker.sock"), "{st}");
    // Without an Engine nothing is known of containers: docker sets are left alone.
    assert_eq!(elems(&ns, "web4"), set_of(&["198.51.100.9"]));
    assert_eq!(d.ctl("ping")["result"], "pong");
    let engine = FakeEngine::start(&sock);
    engine.put(web("web-1", "198.18.5.2", ""));
    assert!(
        wait_until(Duration::from_secs(10), || elems(&ns, "web4") == set_of(&["198.18.5.2"])),
        "{}",
        d.log_text()
    );
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn malformed_json_and_broken_chunks_are_survived() {
    let (ns, engine) = setup("dk-garbage");
    let d = Daemon::start(&ns, &config(&engine.path));
    assert!(wait_until(WAIT, || docker_status(&d)["state"] == "connected"));
    // Two events in one chunk, a garbage line between them, and a chunk boundary inside
    // a multi-byte UTF-8 name.
    let a = web("web-1", "198.18.6.2", "");
    engine.put(a.clone());
    let start = |id: &str, name: &str| {
        format!(
            r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{id}","Attributes":{{"name":"{name}"}}}}}}"#
        )
    };
    let b = FakeContainer::new("c0ffee", "web-ü").label("app", "web").net("back", "198.18.6.3", "");
    engine.put(b.clone());
    let both = format!("{}\n{{\"Type\": garbage\n{}\n", start(&a.id, &a.name), start(&b.id, &b.name));
    let bytes = both.as_bytes();
    let cut = both.find('ü').unwrap() + 1; // inside the two-byte ü
    engine.send_chunks(&[&bytes[..cut], &bytes[cut..]]);
    assert!(
        wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.6.2", "198.18.6.3"])),
        "{}",
        d.log_text()
    );
    assert!(d.log_text().contains("docker: event: invalid JSON"), "{}", d.log_text());

    // A broken chunk size: the stream is unusable, so reconnect and resync.
    engine.send_raw(b"zz\r\nnot hex\r\n".to_vec());
    assert!(wait_until(WAIT, || d.log_text().contains("bad chunk")), "{}", d.log_text());
    engine.stop_container("web-1");
    assert!(
        wait_until(Duration::from_secs(10), || elems(&ns, "web4") == set_of(&["198.18.6.3"])),
        "{}",
        d.log_text()
    );
    assert!(docker_status(&d)["reconnects"].as_u64().unwrap() >= 1);
    assert_eq!(d.ctl("ping")["result"], "pong");
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn reload_turns_docker_on_and_off() {
    let (ns, engine) = setup("dk-reload");
    engine.put(web("web-1", "198.18.8.2", ""));
    let d = Daemon::start(&ns, "interfaces: []\n");
    assert!(d.ctl("status")["result"]["docker"].is_null());
    std::fs::write(&d.config, config(&engine.path)).unwrap();
    assert_eq!(d.ctl("reload")["ok"], Value::Bool(true));
    assert!(wait_until(WAIT, || elems(&ns, "web4") == set_of(&["198.18.8.2"])), "{}", d.log_text());
    std::fs::write(&d.config, "interfaces: []\n").unwrap();
    assert_eq!(d.ctl("reload")["ok"], Value::Bool(true));
    assert!(
        wait_until(WAIT, || elems(&ns, "web4").is_empty()),
        "sets of a removed docker section are emptied"
    );
    // The fake notices a closed stream only when it writes to it.
    assert!(
        wait_until(WAIT, || {
            engine.container_event("noop", "0", "x");
            engine.subscribers() == 0
        }),
        "the event stream is closed"
    );
}

/// Router namespace (netmgrd), a client on its WAN side and a "container" namespace on
/// a container network, with a real TCP server in the container.
struct PublishLab {
    router: Netns,
    client: Netns,
    ctr: Netns,
    servers: Vec<std::process::Child>,
}

impl PublishLab {
    fn new(tag: &str) -> PublishLab {
        let router = Netns::new(&format!("{tag}-r"));
        let client = Netns::new(&format!("{tag}-c"));
        let ctr = Netns::new(&format!("{tag}-k"));
        router.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        for ns in [&client, &ctr] {
            ns.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        }
        router.sh(&format!(
            "ip link add wan0 type veth peer name wan0c netns {} && ip link add ctr0 type veth peer name eth0 netns {}",
            client.name, ctr.name
        ));
        router.sh("ip link set wan0 up && ip link set ctr0 up && ip addr add 203.0.113.1/24 dev wan0 && ip addr add 2001:db8:1::1/64 dev wan0 nodad && ip addr add 198.18.9.1/24 dev ctr0 && ip addr add 2001:db8:9::1/64 dev ctr0 nodad");
        client.sh("ip link set wan0c up && ip addr add 203.0.113.2/24 dev wan0c && ip addr add 2001:db8:1::2/64 dev wan0c nodad");
        ctr.sh("ip link set eth0 up && ip addr add 198.18.9.2/24 dev eth0 && ip addr add 2001:db8:9::2/64 dev eth0 nodad && ip route add default via 198.18.9.1 && ip -6 route add default via 2001:db8:9::1");
        let mut servers = Vec::new();
        for listen in ["TCP4-LISTEN:80,fork,reuseaddr", "TCP6-LISTEN:80,fork,reuseaddr,ipv6only=1"] {
            let child = std::process::Command::new("ip")
                .args(["netns", "exec", &ctr.name, "socat", listen, "SYSTEM:echo hello-from-container"])
                .spawn()
                .expect("socat server");
            servers.push(child);
        }
        let lab = PublishLab { router, client, ctr, servers };
        assert!(wait_until(WAIT, || lab.ctr.sh("ss -ltn").matches(":80 ").count() >= 2), "servers listening");
        lab
    }

    /// One TCP request from `ns` to `addr:port`; the reply, or "" when none came.
    fn fetch(ns: &Netns, target: &str) -> String {
        // Read only: a client that half-closes first can make socat drop the answer.
        let out = ns.try_sh(&format!("timeout 3 socat -u {target} -"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PublishLab {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn published_ports_reach_the_container_through_the_dnat_map() {
    let lab = PublishLab::new("dk-pub");
    let engine = FakeEngine::start(&lab.router.dir.join("docker.sock"));
    let d = Daemon::start(
        &lab.router,
        &format!("docker: {{ socket: {}, publish: true }}\n", engine.path.display()),
    );
    assert!(wait_until(WAIT, || docker_status(&d)["state"] == "connected"), "{}", d.log_text());
    // Nothing published yet: the client gets no answer.
    assert_eq!(PublishLab::fetch(&lab.client, "TCP4:203.0.113.1:8080"), "");

    // `docker run -p 8080:80`: Docker reports an IPv4 and an IPv6 wildcard binding.
    engine.run(
        FakeContainer::new("a1", "web")
            .net("lab", "198.18.9.2", "2001:db8:9::2")
            .port("80/tcp", "0.0.0.0", "8080")
            .port("80/tcp", "::", "8080"),
    );
    let publish4 = || lab.router.set_elements("inet netmgrd", "publish4").unwrap_or_default();
    assert!(wait_until(WAIT, || !publish4().is_empty()), "{}", d.log_text());
    assert_eq!(PublishLab::fetch(&lab.client, "TCP4:203.0.113.1:8080"), "hello-from-container");
    assert_eq!(PublishLab::fetch(&lab.client, "TCP6:[2001:db8:1::1]:8080"), "hello-from-container");
    // Locally generated traffic to the router's own address (output chain).
    assert_eq!(PublishLab::fetch(&lab.router, "TCP4:203.0.113.1:8080"), "hello-from-container");
    // Hairpin: the container reaches its own published port through the router's address.
    assert_eq!(PublishLab::fetch(&lab.ctr, "TCP4:203.0.113.1:8080"), "hello-from-container");
    assert_eq!(PublishLab::fetch(&lab.ctr, "TCP6:[2001:db8:1::1]:8080"), "hello-from-container");

    // A label publishes a port the container was started without.
    engine.stop_container("web");
    engine.remove("web");
    assert!(wait_until(WAIT, || publish4().is_empty()), "{}", d.log_text());
    assert_eq!(PublishLab::fetch(&lab.client, "TCP4:203.0.113.1:8080"), "");
    engine.run(FakeContainer::new("a2", "labelled").label("netmgrd.publish", "9090:80").net(
        "lab",
        "198.18.9.2",
        "",
    ));
    assert!(wait_until(WAIT, || PublishLab::fetch(&lab.client, "TCP4:203.0.113.1:9090")
        == "hello-from-container"));
    // No IPv6 address on the container: nothing is mapped for IPv6.
    assert!(lab.router.set_elements("inet netmgrd", "publish6").unwrap_or_default().is_empty());
    let status = docker_status(&d);
    assert!(status["sets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["set"] == "inet netmgrd publish4" && s["elements"] == 1));
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn owned_table_is_rebuilt_atomically_and_removed_on_flush() {
    let ns = Netns::new("dk-own");
    let engine = FakeEngine::start(&ns.dir.join("docker.sock"));
    engine.put(FakeContainer::new("a1", "web").net("n", "198.18.9.2", "").port("80/tcp", "0.0.0.0", "8080"));
    // A stale table from a crashed instance, with a rule that must not survive.
    ns.nft("table inet netmgrd { comment \"netmgrd owned table\"; chain stale { type filter hook input priority 0; policy accept; }; }\n");
    let config = format!(
        "docker: {{ socket: {}, publish: true }}\nnftables: {{ on_exit: flush }}\n",
        engine.path.display()
    );
    let mut d = Daemon::start(&ns, &config);
    assert!(wait_until(WAIT, || ns.set_elements("inet netmgrd", "publish4").unwrap_or_default().len() == 1));
    let listing = ns.sh("nft list table inet netmgrd");
    assert!(!listing.contains("chain stale"), "{listing}");
    assert_eq!(listing.matches("dnat ip to meta l4proto . th dport map @publish4").count(), 2, "{listing}");
    // Someone flushes the ruleset: `resync` builds the table again and refills it.
    ns.sh("nft flush ruleset");
    d.ctl("resync");
    assert!(
        wait_until(WAIT, || ns.set_elements("inet netmgrd", "publish4").unwrap_or_default().len() == 1),
        "{}",
        d.log_text()
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(1)), Some(0));
    assert!(
        !ns.try_sh("nft list table inet netmgrd").status.success(),
        "on_exit: flush deletes the owned table"
    );
}

/// The Engine API's error paths for networks, with the test Engine: a network created and a
/// container connected; a 409 on create and a 404 on connect reported in `status`; the Engine
/// closing the connection in the middle of a connect, then the request made again after the
/// reconnect; a foreign network of another subnet reported and never changed.
#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn network_requests_conflicts_missing_networks_and_an_engine_gone_mid_connect() {
    use common::fake_engine::NetworkFault;
    let (ns, engine) = setup("dk-net");
    engine.add_network("bridge", "172.17.0.0/16");
    engine.add_network("taken", "198.18.200.0/24");
    engine.run(FakeContainer::new("c-lb", "lb").net("bridge", "172.17.0.2", ""));
    engine.run(FakeContainer::new("c-app", "app").net("bridge", "172.17.0.3", ""));
    let config = format!(
        "docker:\n  socket: {}\n  networks:\n    backend: {{ subnet: 198.18.104.0/24 }}\n    taken: {{ subnet: 198.18.105.0/24 }}\n    late: {{ subnet: 198.18.106.0/24 }}\n  containers:\n    lb: {{ networks: {{ backend: 198.18.104.2 }} }}\n",
        engine.path.display()
    );
    // The first create is refused as a conflict (made by someone else meanwhile).
    engine.set_fault(NetworkFault::ConflictOnCreate);
    let d = Daemon::start(&ns, &config);
    let problems = || docker_status(&d)["network_problems"].to_string();
    assert!(wait_until(WAIT, || problems().contains("409")), "{} {}", problems(), d.log_text());
    assert!(problems().contains("network taken exists with subnet 198.18.200.0/24"), "{}", problems());
    assert_eq!(engine.networks()["taken"].subnet, "198.18.200.0/24", "a foreign network is never changed");
    // The Engine dies in the middle of the connect: reconnect, sync, and the connect again.
    engine.set_fault(NetworkFault::CloseOnConnect);
    // (the refused creates are tried again after 30 s; a reload makes a fresh plan now)
    d.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || engine.networks().contains_key("backend")),
        "{}",
        d.log_text()
    );
    let reconnects = || docker_status(&d)["reconnects"].as_u64().unwrap_or(0);
    assert!(wait_until(Duration::from_secs(10), || reconnects() >= 1), "no reconnect: {}", d.log_text());
    assert!(engine.requests().iter().any(|r| r.starts_with("POST") && r.contains("/connect")));
    // After the reconnect the connect is made again: now the network is missing (404).
    engine.set_fault(NetworkFault::MissingOnConnect);
    assert!(
        wait_until(Duration::from_secs(10), || problems().contains("404")),
        "{} {}",
        problems(),
        d.log_text()
    );
    // All well again; a reload tries at once instead of in 30 s.
    engine.set_fault(NetworkFault::None);
    d.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || engine.address_on("lb", "backend").as_deref()
            == Some("198.18.104.2")),
        "lb never connected: {} {}",
        problems(),
        d.log_text()
    );
    assert!(
        wait_until(WAIT, || !problems().contains("404")),
        "the refusal is gone once done: {}",
        problems()
    );
    assert_eq!(engine.networks()["backend"].labels["netmgrd.managed"], d.config.display().to_string());
    assert_eq!(d.ctl("ping")["ok"], true);
}
