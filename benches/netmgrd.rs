//! `make bench`: netmgrd measured in a private network namespace against the real kernel.
//!
//! Re-executes itself inside a fresh namespace (`ip netns exec`), loads rust-network-mgr's
//! example setup (eth0, dhcp, zone wan -> `inet filter wan_ips`/`wan_ipv6`), starts the
//! release binary and measures:
//! - latency from `ip addr add`/`del` returning to the element being in/out of the set,
//! - a 1,000-address burst (`ip -batch`) until the set is exact, and back to empty,
//! - wake-ups and CPU time over 10 s idle, RSS, binary size.
//!
//! The set is polled through netmgrd's own nftables reader (tens of µs per read), not `nft`.

#[path = "../tests/common/fake_engine.rs"]
mod fake_engine;
#[path = "../tests/common/journald.rs"]
mod journald;

use fake_engine::{FakeContainer, FakeEngine};
use journald::{PrivateJournald, STARTED, STOPPED};
use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use netmgrd::elements::TableRef;
use netmgrd::elements::{Elem, SetId, SetKind};
use netmgrd::nft::Nft;
use netmgrd::wire::route::{Route, Rule};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::io::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRIALS: usize = 40;
const BURST: u32 = 1000;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    if std::env::var_os("NETMGRD_BENCH_INNER").is_none() {
        outer();
    } else {
        inner();
    }
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().expect("sh");
    assert!(st.success(), "`{cmd}` failed");
}

fn outer() {
    let ns = format!("nmbench-{}", std::process::id());
    sh(&format!("ip netns add {ns}"));
    let exe = std::env::current_exe().expect("own path");
    let bin = std::env::var("NETMGRD_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/netmgrd").to_string());
    // nsenter (network namespace only): `ip netns exec` would remount /sys and hide the cgroup
    // tree the cgroup rows need.
    let st = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{ns}"))
        .arg(exe)
        .env("NETMGRD_BENCH_INNER", "1")
        .env("NETMGRD_BIN", bin)
        .status()
        .expect("re-exec in namespace");
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    std::process::exit(st.code().unwrap_or(1));
}

struct Stats {
    median: f64,
    p95: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Stats { median: at(0.5), p95: at(0.95), max: v[v.len() - 1] }
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // After the command name: state is not numeric, so utime/stime are fields 11 and 12 here.
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

fn wait_set(
    nft: &mut Nft,
    set: &SetId,
    want: impl Fn(&BTreeSet<Elem>) -> bool,
    timeout: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if let Ok(e) = nft.read_set(set) {
            if want(&e) {
                return Some(t0.elapsed());
            }
        }
        if t0.elapsed() > timeout {
            return None;
        }
    }
}

fn inner() {
    let bin = std::env::var("NETMGRD_BIN").expect("NETMGRD_BIN");
    let dir = std::env::temp_dir().join(format!("nmbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // NETMGRD_BENCH_ONLY=docker-networks: only the real-Engine row.
    if std::env::var("NETMGRD_BENCH_ONLY").as_deref() == Ok("docker-networks") {
        match docker_net_bench(&bin, &dir) {
            Ok(s) => println!("| docker | median {:.0} ms, p95 {:.0} ms |", s.median, s.p95),
            Err(e) => println!("| docker | n/a: {e} |"),
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // NETMGRD_BENCH_ONLY=link: only the hooks and policy-routing rows (while working on them).
    if std::env::var("NETMGRD_BENCH_ONLY").as_deref() == Ok("link") {
        sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        let l = link_bench(&bin, &dir);
        println!(
            "| hook | median {:.2} ms, p95 {:.2} ms | policy | median {:.2} ms, p95 {:.2} ms | idle {} |",
            l.hook.median, l.hook.p95, l.policy.median, l.policy.p95, l.idle_switches
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // No IPv6 DAD in the namespace: link-local addresses finishing DAD seconds after link-up
    // are real kernel events and would land in the idle window.
    sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    sh("ip link set lo up && ip link add eth0 type veth peer name eth0p && ip link set eth0 up && ip link set eth0p up");
    std::fs::write(
        dir.join("rules.nft"),
        "table inet filter {\n  set wan_ips { type ipv4_addr; }\n  set wan_ipv6 { type ipv6_addr; }\n}\n",
    )
    .expect("ruleset");
    sh(&format!("nft -f {}", dir.join("rules.nft").display()));
    // rust-network-mgr's own example config, unchanged.
    std::fs::write(
        dir.join("config.yaml"),
        "interfaces:\n  - name: eth0 # Example interface, replace with actual\n    dhcp: true\n    nftables_zone: wan # Example zone, maps to 'wan_ips' set\n",
    )
    .expect("config");
    let socket = dir.join("ctl.sock");
    let mut child = spawn_netmgrd(&bin, &dir.join("config.yaml"), &socket, Some(&dir.join("netmgrd.log")));
    let pid = child.id();
    let set = SetId {
        table: TableRef::parse("inet filter").expect("table"),
        name: "wan_ips".into(),
        kind: SetKind::Ipv4Addr,
    };
    let mut nft = Nft::open().expect("nft socket");
    // Ready: the control socket answers and the set is readable.
    let t0 = Instant::now();
    while !socket.exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }

    let addr = |i: u32| Ipv4Addr::from(0xC612_0000u32 + 2000 + i); // 198.18.0.0/15
    let mut add_lat = Vec::new();
    let mut del_lat = Vec::new();
    for i in 0..TRIALS as u32 {
        let a = addr(i);
        let e = Elem::Addr(IpAddr::V4(a));
        sh(&format!("ip addr add {a}/32 dev eth0"));
        let d = wait_set(&mut nft, &set, |s| s.contains(&e), Duration::from_secs(2)).expect("added");
        add_lat.push(d.as_secs_f64() * 1e3);
        sh(&format!("ip addr del {a}/32 dev eth0"));
        let d = wait_set(&mut nft, &set, |s| !s.contains(&e), Duration::from_secs(2)).expect("deleted");
        del_lat.push(d.as_secs_f64() * 1e3);
    }

    let mut add = String::new();
    let mut del = String::new();
    let mut want = BTreeSet::new();
    for i in 0..BURST {
        let a = Ipv4Addr::from(0xC612_0000u32 + 10_000 + i);
        add.push_str(&format!("address add {a}/32 dev eth0\n"));
        del.push_str(&format!("address del {a}/32 dev eth0\n"));
        want.insert(Elem::Addr(IpAddr::V4(a)));
    }
    std::fs::write(dir.join("add.batch"), add).expect("batch");
    std::fs::write(dir.join("del.batch"), del).expect("batch");
    let batches_before = nft_batches(&bin, &socket);
    let t = Instant::now();
    sh(&format!("ip -batch {}", dir.join("add.batch").display()));
    let ip_add = t.elapsed();
    wait_set(&mut nft, &set, |s| *s == want, Duration::from_secs(10)).expect("burst exact");
    let burst_add = t.elapsed();
    let batches_add = nft_batches(&bin, &socket) - batches_before;
    let t = Instant::now();
    sh(&format!("ip -batch {}", dir.join("del.batch").display()));
    let ip_del = t.elapsed();
    wait_set(&mut nft, &set, |s| s.is_empty(), Duration::from_secs(10)).expect("burst emptied");
    let burst_del = t.elapsed();

    // Idle: no events for 10 s. A process that is never scheduled makes no syscalls.
    std::thread::sleep(Duration::from_millis(500));
    let log_before = std::fs::metadata(dir.join("netmgrd.log")).map(|m| m.len()).unwrap_or(0);
    let (v0, n0, c0) = (
        proc_field(pid, "voluntary_ctxt_switches:"),
        proc_field(pid, "nonvoluntary_ctxt_switches:"),
        cpu_ticks(pid),
    );
    let blocked_in = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    std::thread::sleep(Duration::from_secs(10));
    let (v1, n1, c1) = (
        proc_field(pid, "voluntary_ctxt_switches:"),
        proc_field(pid, "nonvoluntary_ctxt_switches:"),
        cpu_ticks(pid),
    );
    let log = std::fs::read(dir.join("netmgrd.log")).unwrap_or_default();
    let idle_log = String::from_utf8_lossy(log.get(log_before as usize..).unwrap_or_default()).into_owned();
    let rss = proc_field(pid, "VmRSS:");
    let hwm = proc_field(pid, "VmHWM:");
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    let docker = docker_bench(&bin, &dir, &mut nft);
    let natf = nat_bench(&dir, &mut nft);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let repair = repair_bench(&bin, &dir, &mut nft);
    let control = control_bench(&bin, &dir, &mut nft);
    let cgroups = cgroup_bench(&bin, &dir, &mut nft, None);
    let journald = PrivateJournald::start();
    let journal = journald.as_ref().and_then(|j| cgroup_bench(&bin, &dir, &mut nft, Some(j)));
    drop(journald);
    let link = link_bench(&bin, &dir);
    let docker_net = docker_net_bench(&bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);

    let a = stats(add_lat);
    let d = stats(del_lat);
    let syscall_no = blocked_in.split_whitespace().next().unwrap_or("?");
    println!("netmgrd benchmark (kernel {}, {} trials)", kernel(), TRIALS);
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| add latency (`ip addr add` returned -> in set) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        a.median, a.p95, a.max
    );
    println!(
        "| delete latency (`ip addr del` returned -> gone) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        d.median, d.p95, d.max
    );
    println!("| {BURST}-address burst: start of `ip -batch` -> set exact | {:.1} ms (ip itself: {:.1} ms), {} nft transactions |", ms(burst_add), ms(ip_add), batches_add);
    println!(
        "| {BURST}-address removal -> set empty | {:.1} ms (ip itself: {:.1} ms) |",
        ms(burst_del),
        ms(ip_del)
    );
    println!("| idle 10 s: wake-ups (context switches) | {} voluntary, {} involuntary, {} CPU ticks; blocked in syscall {} (7 = poll) |", v1 - v0, n1 - n0, c1 - c0, syscall_no);
    if !idle_log.trim().is_empty() {
        println!("(events during the idle window, from the kernel:)\n{}", idle_log.trim());
    }
    println!("| RSS after the burst | {} KiB now, {} KiB peak |", rss, hwm);
    println!(
        "| container start event -> IP in set (test Engine) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        docker.start.median, docker.start.p95, docker.start.max
    );
    println!(
        "| container stop event -> IP gone | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        docker.stop.median, docker.stop.p95, docker.stop.max
    );
    println!(
        "| {DOCKER_BURST} containers started in a burst -> set exact | {:.1} ms, {} nft transactions |",
        docker.burst_start_ms, docker.burst_start_batches
    );
    println!(
        "| {DOCKER_BURST} containers stopped in a burst -> set empty | {:.1} ms, {} nft transactions |",
        docker.burst_stop_ms, docker.burst_stop_batches
    );
    println!("| release binary (stripped) | {} KiB |", size / 1024);
    println!(
        "| {NAT_RULES} DNAT entries: owned table built in one transaction | median {:.1} ms ({} map elements, {} rules) |",
        natf.build.median, natf.elements, natf.rules
    );
    println!(
        "| reload with one DNAT entry changed (table replaced atomically) | median {:.1} ms |",
        natf.reload.median
    );
    println!("| the same table as one `nft -f` process | median {:.1} ms |", natf.nft_f.median);
    match natf.iptables_ms {
        Some(ms) => println!("| the same {NAT_RULES} forwards as `iptables -t nat -A` processes | {ms:.0} ms ({:.2} ms each) |", ms / NAT_RULES as f64),
        None => println!("| the same {NAT_RULES} forwards as `iptables -t nat -A` processes | n/a (no iptables here) |"),
    }
    println!(
        "| foreign `nft -f` (flush ruleset + reload, 2 sets x {REPAIR_ADDRS} addresses) returned -> both sets exact | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        repair.reload.median, repair.reload.p95, repair.reload.max
    );
    println!(
        "| one element deleted by another process -> restored | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        repair.element.median, repair.element.p95, repair.element.max
    );
    println!(
        "| owned table ({NAT_RULES} DNAT entries) deleted by another process -> rebuilt with every element | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        repair.owned.median, repair.owned.p95, repair.owned.max
    );
    println!("| idle 3 s after the repairs | {} context switches |", repair.idle_switches);
    println!(
        "| {CONTROL_REQUESTS} pipelined `sets` requests ({CONTROL_ELEMENTS}-element set, replies read) | all answered in {:.0} ms; peak RSS {} KiB (before: {} KiB) |",
        control.total_ms, control.peak_kib, control.before_kib
    );
    println!(
        "| `ping` from another client during that flood | median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} pings) |",
        control.ping.median, control.ping.p95, control.ping.max, control.pings
    );
    match &cgroups {
        Some(c) => {
            println!(
                "| cgroup created -> id in set (inotify) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
                c.created.median, c.created.p95, c.created.max
            );
            println!(
                "| {CGROUP_BURST} cgroups created at once -> set exact (inotify) | {:.1} ms |",
                c.burst_ms
            );
            println!("| idle 3 s with the inotify cgroup source | {} context switches |", c.idle_switches);
        }
        None => println!("| cgroup rows | n/a (no cgroup2 mount) |"),
    }
    println!(
        "| peer link set up (rtnetlink request acknowledged) -> hook running (its file written; includes the shell's start) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        link.hook.median, link.hook.p95, link.hook.max
    );
    println!(
        "| address added (rtnetlink request acknowledged) -> policy rules and routes in place (read by a dump) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
        link.policy.median, link.policy.p95, link.policy.max
    );
    println!(
        "| idle 3 s with hooks and policy routing configured | {} context switches |",
        link.idle_switches
    );
    match &docker_net {
        Ok(d) => println!(
            "| `docker run` returned -> container on its network with its fixed address and the DNAT rule in its namespace (real Engine, {DOCKER_TRIALS} trials) | median {:.1} ms, p95 {:.1} ms, max {:.1} ms |",
            d.median, d.p95, d.max
        ),
        Err(e) => println!("| docker network rows | n/a: {e} |"),
    }
    match &journal {
        Some(c) => {
            println!(
                "| cgroup created + start message sent -> id in set (journal: journald -> journalctl -> netmgrd) | median {:.2} ms, p95 {:.2} ms, max {:.2} ms |",
                c.created.median, c.created.p95, c.created.max
            );
            println!(
                "| {CGROUP_BURST} units started at once -> set exact (journal) | {:.1} ms |",
                c.burst_ms
            );
            println!("| idle 3 s with the journal source | {} context switches |", c.idle_switches);
        }
        None => println!("| journal rows | n/a (no systemd-journald) |"),
    }
}

const CGROUP_BURST: usize = 100;

struct CgroupFigures {
    created: Stats,
    burst_ms: f64,
    idle_switches: u64,
}

/// A netmgrd following a cgroup subtree of our own into `inet cg svc`, with inotify or, with
/// `journal`, through journalctl following a private journald.
fn cgroup_bench(
    bin: &str,
    dir: &std::path::Path,
    nft: &mut Nft,
    journal: Option<&PrivateJournald>,
) -> Option<CgroupFigures> {
    use std::os::unix::fs::MetadataExt;
    let root = netmgrd::sources::cgroups::find_root()?;
    let sub = root.join(format!("nmbench-{}", std::process::id()));
    std::fs::create_dir(&sub).ok()?;
    sh("nft add table inet cg && nft add set inet cg svc '{ typeof socket cgroupv2 level 2; }'");
    let name = sub.file_name()?.to_string_lossy().to_string();
    let watch = if journal.is_some() { "journal" } else { "inotify" };
    std::fs::write(
        dir.join("cg.yaml"),
        format!("nftables: {{ table: inet cg }}\ncgroups:\n  root: {}\n  watch: {watch}\n  sets: [{{ set: svc, paths: [\"{name}/*\"], level: 2 }}]\n", root.display()),
    )
    .expect("config");
    let mut child = match journal {
        // In journald's mount namespace, so journalctl reads its journal.
        Some(j) => Command::new("nsenter")
            .arg(format!("--mount={}", j.mount_ns()))
            .arg(bin)
            .args(["run", "--config"])
            .arg(dir.join("cg.yaml"))
            .arg("--socket")
            .arg(dir.join("cg.sock"))
            .args(["--log-target", "stderr", "--log-level", "warn"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start netmgrd"),
        None => spawn_netmgrd(bin, &dir.join("cg.yaml"), &dir.join("cg.sock"), None),
    };
    let set = SetId {
        table: TableRef::parse("inet cg").expect("table"),
        name: "svc".into(),
        kind: SetKind::Cgroup,
    };
    wait_set(nft, &set, |_| true, Duration::from_secs(5)).expect("set readable");
    std::thread::sleep(Duration::from_millis(300)); // the first scan
    let mut created = Vec::new();
    for i in 0..TRIALS {
        let unit = format!("t{i}.service");
        let p = sub.join(&unit);
        let t = Instant::now();
        std::fs::create_dir(&p).expect("mkdir");
        if let Some(j) = journal {
            j.log(STARTED, &unit);
        }
        let e = Elem::Cgroup(std::fs::metadata(&p).expect("stat").ino());
        wait_set(nft, &set, |s| s.contains(&e), Duration::from_secs(2)).expect("cgroup in set");
        created.push(ms(t.elapsed()));
        std::fs::remove_dir(&p).expect("rmdir");
        if let Some(j) = journal {
            j.log(STOPPED, &unit);
        }
        wait_set(nft, &set, |s| !s.contains(&e), Duration::from_secs(2)).expect("cgroup gone");
    }
    let t = Instant::now();
    let want: BTreeSet<Elem> = (0..CGROUP_BURST)
        .map(|i| {
            let unit = format!("b{i}.service");
            let p = sub.join(&unit);
            std::fs::create_dir(&p).expect("mkdir");
            if let Some(j) = journal {
                j.log(STARTED, &unit);
            }
            Elem::Cgroup(std::fs::metadata(&p).expect("stat").ino())
        })
        .collect();
    wait_set(nft, &set, |s| *s == want, Duration::from_secs(10)).expect("burst exact");
    let burst_ms = ms(t.elapsed());
    // Idle with the source on, once the re-looks after the last stop message (up to 3.75 s
    // after it) are over.
    std::thread::sleep(Duration::from_secs(4));
    let pid = child.id();
    let switches =
        || proc_field(pid, "voluntary_ctxt_switches:") + proc_field(pid, "nonvoluntary_ctxt_switches:");
    let before = switches();
    std::thread::sleep(Duration::from_secs(3));
    let idle_switches = switches() - before;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    for i in 0..CGROUP_BURST {
        let _ = std::fs::remove_dir(sub.join(format!("b{i}.service")));
    }
    let _ = std::fs::remove_dir(&sub);
    sh("nft delete table inet cg");
    Some(CgroupFigures { created: stats(created), burst_ms, idle_switches })
}

struct LinkFigures {
    hook: Stats,
    policy: Stats,
    idle_switches: u64,
}

/// One rtnetlink request from the bench itself (no `ip` process to wait for), until its ACK.
fn rtnl_request(sock: &NlSocket, msg_type: u16, flags: u16, payload: &[u8], buf: &mut [u8]) {
    let mut m = Vec::with_capacity(16 + payload.len());
    m.extend(((16 + payload.len()) as u32).to_ne_bytes());
    m.extend(msg_type.to_ne_bytes());
    m.extend((flags | 0x1 | 0x4).to_ne_bytes()); // REQUEST | ACK
    m.extend(77u32.to_ne_bytes());
    m.extend(0u32.to_ne_bytes());
    m.extend(payload);
    netmgrd::sys::fd::send_iovecs(sock.as_raw_fd(), &[&m]).expect("rtnetlink request");
    loop {
        let n = netmgrd::sys::fd::recv(sock.as_raw_fd(), buf, false).expect("recv").unwrap_or(0);
        let acked = netmgrd::wire::netlink::split(&buf[..n]).flatten().find_map(|msg| {
            (msg.msg_type == netmgrd::wire::netlink::NLMSG_ERROR)
                .then(|| netmgrd::wire::netlink::parse_ack(&msg))
        });
        if let Some(ack) = acked.flatten() {
            assert_eq!(ack.errno, 0, "rtnetlink refused: {:?}", ack.message);
            return;
        }
    }
}

/// `ip link set INDEX up|down` as one RTM_NEWLINK.
fn link_set(sock: &NlSocket, index: i32, up: bool, buf: &mut [u8]) {
    let mut p = vec![0u8, 0];
    p.extend(0u16.to_ne_bytes());
    p.extend(index.to_ne_bytes());
    p.extend(u32::from(up).to_ne_bytes()); // IFF_UP
    p.extend(1u32.to_ne_bytes()); // change: IFF_UP
    rtnl_request(sock, 16, 0, &p, buf);
}

/// `ip addr add|del A/24 dev INDEX` as one RTM_NEWADDR / RTM_DELADDR.
fn addr_set(sock: &NlSocket, index: u32, a: Ipv4Addr, add: bool, buf: &mut [u8]) {
    let mut p = vec![2u8, 24, 0, 0]; // AF_INET, /24, flags, scope universe
    p.extend(index.to_ne_bytes());
    for ty in [2u16, 1u16] {
        // IFA_LOCAL, IFA_ADDRESS
        p.extend(8u16.to_ne_bytes());
        p.extend(ty.to_ne_bytes());
        p.extend(a.octets());
    }
    let (ty, flags) = if add { (20, 0x400 | 0x200) } else { (21, 0) };
    rtnl_request(sock, ty, flags, &p, buf);
}

/// Every rule and route of netmgrd's (proto 233), read by a dump on a socket of our own.
fn policy_entries(sock: &NlSocket, buf: &mut [u8]) -> (Vec<Rule>, Vec<Route>) {
    use netmgrd::wire::route::{dump_request, parse, RouteMessage};
    let mut rules = Vec::new();
    let mut routes = Vec::new();
    for (i, want_rules) in [true, false].into_iter().enumerate() {
        let seq = 1000 + i as u32;
        netmgrd::sys::fd::send_iovecs(sock.as_raw_fd(), &[&dump_request(want_rules, seq)]).expect("dump");
        'dump: loop {
            let n = netmgrd::sys::fd::recv(sock.as_raw_fd(), buf, false).expect("recv").unwrap_or(0);
            for m in parse(&buf[..n]) {
                match m {
                    RouteMessage::Done { .. } => break 'dump,
                    RouteMessage::NewRule(r) if r.protocol == 233 => rules.push(r),
                    RouteMessage::NewRoute(r) if r.protocol == 233 => routes.push(r),
                    _ => {}
                }
            }
        }
    }
    (rules, routes)
}

/// Hooks and policy routing on a veth pair: link up -> hook process running (it creates a
/// file: the figure includes the shell's start), address added -> rules and routes in place.
fn link_bench(bin: &str, dir: &std::path::Path) -> LinkFigures {
    sh("ip link add hb0 type veth peer name hb1 && ip link set hb0 up");
    let hooks = dir.join("hooks");
    // With DAD off the peer's link-local address is there at once: up is `degraded`.
    for (state, file) in [("carrier.d", "up"), ("degraded.d", "up"), ("no-carrier.d", "down")] {
        std::fs::create_dir_all(hooks.join(state)).expect("mkdir");
        let script = hooks.join(state).join("10-touch");
        // Only hb0's transitions count (hb1 changes state too).
        let body = format!("#!/bin/sh\n[ \"$LINK\" = hb0 ] && : > {}\nexit 0\n", dir.join(file).display());
        std::fs::write(&script, body).expect("hook");
        sh(&format!("chmod +x {}", script.display()));
    }
    std::fs::write(
        dir.join("link.yaml"),
        format!(
            "hooks: {{ dir: {} }}\npolicy_routing:\n  - {{ interface: hb0, table: 10100, priority: 1100 }}\n",
            hooks.display()
        ),
    )
    .expect("config");
    let log = dir.join("link.log");
    let mut child = spawn_netmgrd(bin, &dir.join("link.yaml"), &dir.join("link.sock"), Some(&log));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_file = |name: &str| {
        let p = dir.join(name);
        let t = Instant::now();
        while !p.exists() {
            assert!(t.elapsed() < Duration::from_secs(5), "no {name} hook\n{}", log_text());
            std::thread::sleep(Duration::from_micros(50));
        }
        let _ = std::fs::remove_file(&p);
    };
    // At start hb0 is up without carrier: its no-carrier hook runs once.
    wait_file("down");
    let sock = NlSocket::connect(NlFamily::Route, None, Groups::empty()).expect("netlink");
    let mut buf = vec![0u8; 1 << 16];
    let index_of = |name: &str| -> i32 {
        let out = Command::new("ip").args(["-o", "link", "show", name]).output().expect("ip");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split(':').next().and_then(|n| n.trim().parse().ok()).expect("ifindex")
    };
    let (hb0, hb1) = (index_of("hb0"), index_of("hb1"));
    // The timer starts when the kernel has acknowledged the change (like `ip` returning, but
    // without a process of its own in the figure).
    let mut hook = Vec::new();
    for _ in 0..TRIALS {
        link_set(&sock, hb1, true, &mut buf);
        let t = Instant::now();
        wait_file("up");
        hook.push(ms(t.elapsed()));
        link_set(&sock, hb1, false, &mut buf);
        wait_file("down");
    }
    link_set(&sock, hb1, true, &mut buf);
    wait_file("up");
    let mut policy = Vec::new();
    for i in 0..TRIALS {
        let a = Ipv4Addr::new(198, 18, 5, i as u8 + 1);
        addr_set(&sock, hb0 as u32, a, true, &mut buf);
        let t = Instant::now();
        let ip = IpAddr::V4(a);
        loop {
            let (rules, routes) = policy_entries(&sock, &mut buf);
            let has_rules = rules
                .iter()
                .filter(|r| r.src.map(|p| p.addr) == Some(ip) || r.dst.map(|p| p.addr) == Some(ip))
                .count()
                == 2;
            if has_rules && routes.iter().any(|r| r.table == 10100 && r.dst.is_some()) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "no policy rules for {a}: {rules:?} {routes:?}\n{}",
                log_text()
            );
        }
        policy.push(ms(t.elapsed()));
        addr_set(&sock, hb0 as u32, a, false, &mut buf);
        let t = Instant::now();
        while !policy_entries(&sock, &mut buf).0.is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "rules for {a} stay");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id();
    let switches =
        || proc_field(pid, "voluntary_ctxt_switches:") + proc_field(pid, "nonvoluntary_ctxt_switches:");
    let before = switches();
    std::thread::sleep(Duration::from_secs(3));
    let idle_switches = switches() - before;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    sh("ip link del hb0");
    LinkFigures { hook: stats(hook), policy: stats(policy), idle_switches }
}

const DOCKER_TRIALS: usize = 10;

/// One blocking `GET` to the Engine; the body.
fn engine_get(path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect("/var/run/docker.sock").ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// With the machine's real Engine (when it answers and the test image exists): netmgrd
/// creates a network; each trial starts a configured container and times until it is on the
/// network with its fixed address and netmgrd's table is in its namespace.
fn docker_net_bench(bin: &str, dir: &std::path::Path) -> Result<Stats, String> {
    let image = "netmgrd-test-busybox:latest";
    let ok = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok("docker info") || !ok(&format!("docker image inspect {image}")) {
        return Err("no Docker Engine or no test image (make test builds it)".into());
    }
    let pid = std::process::id();
    let (net, lb, app) = (format!("nmb-net-{pid}"), format!("nmb-lb-{pid}"), format!("nmb-app-{pid}"));
    let third = 50 + pid % 50;
    std::fs::write(
        dir.join("dn.yaml"),
        format!(
            "docker:\n  networks:\n    {net}: {{ subnet: 198.18.{third}.0/24 }}\n  containers:\n    {lb}: {{ networks: {{ {net}: 198.18.{third}.2 }} }}\n    {app}: {{ networks: {{ {net}: 198.18.{third}.3 }} }}\nnat:\n  dnat:\n    - {{ in_container: {lb}, proto: tcp, port: 8080, to: \"container:{app}:80\" }}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = spawn_netmgrd(bin, &dir.join("dn.yaml"), &dir.join("dn.sock"), None);
    let cleanup = |all: bool| {
        let _ = ok(&format!("docker rm -f {lb}"));
        if all {
            let _ = ok(&format!("docker rm -f {app}"));
            let _ = ok(&format!("docker network rm {net}"));
        }
    };
    let _ = ok(&format!("docker run -d --name {app} {image} sleep 600"));
    let mut times = Vec::new();
    let result = (|| {
        for _ in 0..DOCKER_TRIALS {
            if !ok(&format!("docker run -d --name {lb} {image} sleep 600")) {
                return Err("docker run failed".to_string());
            }
            let t = Instant::now();
            let want_ip = format!("\"IPAddress\":\"198.18.{third}.2\"");
            loop {
                let body = engine_get(&format!("/containers/{lb}/json")).unwrap_or_default();
                let cpid = body
                    .split("\"Pid\":")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .unwrap_or(0);
                let connected = body.contains(&want_ip);
                let table = cpid > 0
                    && netmgrd::sys::netns::run_in(cpid, || {
                        Nft::open()
                            .ok()
                            .and_then(|mut n| n.table_exists(&netmgrd::container_ns::ns_table()).ok())
                    })
                    .ok()
                    .flatten()
                        == Some(true);
                if connected && table {
                    break;
                }
                if t.elapsed() > Duration::from_secs(20) {
                    return Err("container not connected with its rules within 20 s".to_string());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            times.push(ms(t.elapsed()));
            cleanup(false);
        }
        Ok(())
    })();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    cleanup(true);
    result.map(|()| stats(times))
}

const CONTROL_REQUESTS: usize = 1000;
const CONTROL_ELEMENTS: u32 = 20_000;

struct ControlFigures {
    total_ms: f64,
    peak_kib: u64,
    before_kib: u64,
    ping: Stats,
    pings: usize,
}

/// A client pipelining 1,000 `sets` against a 20,000-element set while another pings.
fn control_bench(bin: &str, dir: &std::path::Path, nft: &mut Nft) -> ControlFigures {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    sh("ip link add cb0 type veth peer name cb0p && ip link set cb0 up && ip link set cb0p up");
    let batch: String = (0..CONTROL_ELEMENTS)
        .map(|i| format!("address add {}/32 dev cb0\n", Ipv4Addr::from(0xC612_0000u32 + 0x1_0000 + i)))
        .collect();
    std::fs::write(dir.join("cb.batch"), batch).expect("batch");
    sh(&format!("ip -batch {}", dir.join("cb.batch").display()));
    sh("nft add table inet cb && nft add set inet cb big_ips '{ type ipv4_addr; }' && nft add set inet cb big_ipv6 '{ type ipv6_addr; }'");
    std::fs::write(
        dir.join("cb.yaml"),
        "nftables: { table: inet cb }\ninterfaces:\n  - { name: cb0, zone: big }\n",
    )
    .expect("config");
    let socket = dir.join("cb.sock");
    let mut child = spawn_netmgrd(bin, &dir.join("cb.yaml"), &socket, None);
    let set = SetId {
        table: TableRef::parse("inet cb").expect("table"),
        name: "big_ips".into(),
        kind: SetKind::Ipv4Addr,
    };
    wait_set(nft, &set, |s| s.len() == CONTROL_ELEMENTS as usize, Duration::from_secs(20))
        .expect("set filled");
    let pid = child.id();
    let before_kib = proc_field(pid, "VmHWM:");
    let mut flood = UnixStream::connect(&socket).expect("connect");
    let requests = "sets\n".repeat(CONTROL_REQUESTS);
    let t = Instant::now();
    let mut writer = flood.try_clone().expect("clone");
    let w = std::thread::spawn(move || writer.write_all(requests.as_bytes()).expect("write"));
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(&mut flood);
        let mut line = String::new();
        for _ in 0..CONTROL_REQUESTS {
            line.clear();
            r.read_line(&mut line).expect("reply");
        }
        Instant::now()
    });
    let mut pings = Vec::new();
    while !reader.is_finished() {
        let p = Instant::now();
        let mut s = UnixStream::connect(&socket).expect("connect");
        s.write_all(b"ping\n").expect("ping");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("pong");
        pings.push(ms(p.elapsed()));
        std::thread::sleep(Duration::from_millis(2));
    }
    let done = reader.join().expect("reader");
    w.join().expect("writer");
    let total_ms = ms(done - t);
    let peak_kib = proc_field(pid, "VmHWM:");
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let n = pings.len();
    ControlFigures { total_ms, peak_kib, before_kib, ping: stats(pings), pings: n }
}

const REPAIR_ADDRS: u32 = 1000;
const REPAIR_TRIALS: usize = 20;

struct RepairFigures {
    reload: Stats,
    element: Stats,
    owned: Stats,
    idle_switches: u64,
}

/// Foreign changes repaired from the nft monitor: a netmgrd on `inet rp` (2 x 1,000 addresses
/// on rp0) and one owning a table with 1,000 DNAT entries; this process is the foreigner.
fn repair_bench(bin: &str, dir: &std::path::Path, nft: &mut Nft) -> RepairFigures {
    sh("ip link add rp0 type veth peer name rp0p && ip link set rp0 up && ip link set rp0p up");
    let mut batch = String::new();
    let (mut want4, mut want6) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..REPAIR_ADDRS {
        let a4 = Ipv4Addr::from(0xC613_0000u32 + i); // 198.19.0.0 and up
        let a6: std::net::Ipv6Addr = format!("2001:db8:7::{:x}", i + 1).parse().expect("v6");
        batch.push_str(&format!("address add {a4}/32 dev rp0\naddress add {a6}/128 dev rp0 nodad\n"));
        want4.insert(Elem::Addr(IpAddr::V4(a4)));
        want6.insert(Elem::Addr(IpAddr::V6(a6)));
    }
    std::fs::write(dir.join("rp.batch"), batch).expect("batch");
    sh(&format!("ip -batch {}", dir.join("rp.batch").display()));
    let ruleset = "flush ruleset\ntable inet rp {\n  set wan_ips { type ipv4_addr; }\n  set wan_ipv6 { type ipv6_addr; }\n}\n";
    std::fs::write(dir.join("rp.nft"), ruleset).expect("ruleset");
    sh(&format!("nft -f {}", dir.join("rp.nft").display()));
    std::fs::write(
        dir.join("rp.yaml"),
        "nftables: { table: inet rp }\ninterfaces:\n  - { name: rp0, zone: wan }\n",
    )
    .expect("config");
    let mut child = spawn_netmgrd(bin, &dir.join("rp.yaml"), &dir.join("rp.sock"), None);
    let table = TableRef::parse("inet rp").expect("table");
    let v4 = SetId { table: table.clone(), name: "wan_ips".into(), kind: SetKind::Ipv4Addr };
    let v6 = SetId { table, name: "wan_ipv6".into(), kind: SetKind::Ipv6Addr };
    let both_exact = |nft: &mut Nft| {
        wait_set(nft, &v4, |s| *s == want4, Duration::from_secs(10))
            .and_then(|_| wait_set(nft, &v6, |s| *s == want6, Duration::from_secs(10)))
    };
    both_exact(nft).expect("sets filled at start");
    let mut reload = Vec::new();
    for _ in 0..REPAIR_TRIALS {
        let st = Command::new("nft").arg("-f").arg(dir.join("rp.nft")).status().expect("nft -f");
        assert!(st.success());
        let t = Instant::now();
        both_exact(nft).expect("repaired after nft -f");
        reload.push(ms(t.elapsed()));
    }
    let mut element = Vec::new();
    for i in 0..REPAIR_TRIALS as u32 {
        let e = Elem::Addr(IpAddr::V4(Ipv4Addr::from(0xC613_0000u32 + i)));
        let del = netmgrd::diff::SetChange { set: v4.clone(), add: vec![], del: vec![e] };
        nft.apply(&[del]).expect("foreign delete");
        let t = Instant::now();
        wait_set(nft, &v4, |s| s.contains(&e), Duration::from_secs(2)).expect("element restored");
        element.push(ms(t.elapsed()));
    }
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));
    let switches =
        || proc_field(pid, "voluntary_ctxt_switches:") + proc_field(pid, "nonvoluntary_ctxt_switches:");
    let before = switches();
    std::thread::sleep(Duration::from_secs(3));
    let idle_switches = switches() - before;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();

    // The owned table: 1,000 DNAT entries in one map, deleted by this process.
    let setup = nat_config(dir, 80);
    let mut child = spawn_netmgrd(bin, &setup.config.path, &dir.join("own.sock"), None);
    let owned = TableRef::parse("inet netmgrd").expect("table");
    let map = SetId { table: owned.clone(), name: "dnat4".into(), kind: SetKind::Forward4 };
    let full = |s: &BTreeSet<Elem>| s.len() == NAT_RULES;
    wait_set(nft, &map, full, Duration::from_secs(10)).expect("owned table built");
    let mut rebuilt = Vec::new();
    for _ in 0..7 {
        netmgrd::nft::delete_owned_table(nft, &owned).expect("foreign delete");
        let t = Instant::now();
        wait_set(nft, &map, full, Duration::from_secs(5)).expect("owned table rebuilt");
        rebuilt.push(ms(t.elapsed()));
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    RepairFigures { reload: stats(reload), element: stats(element), owned: stats(rebuilt), idle_switches }
}

const DOCKER_BURST: u32 = 100;
const NAT_RULES: usize = 1000;

struct NatFigures {
    build: Stats,
    reload: Stats,
    nft_f: Stats,
    rules: usize,
    elements: usize,
    iptables_ms: Option<f64>,
}

fn nat_config(dir: &std::path::Path, changed: u16) -> netmgrd::setup::Setup {
    let mut text = String::from("interfaces:\n  - { name: eth0, zone: wan }\nnat:\n  dnat:\n");
    for i in 0..NAT_RULES {
        let a = Ipv4Addr::from(0xC612_8000u32 + i as u32); // 198.18.128.0 and up
        let to_port = if i == 0 { changed } else { 80 };
        text.push_str(&format!(
            "    - {{ in_interface: eth0, proto: tcp, port: {}, to: \"{a}:{to_port}\" }}\n",
            10_000 + i
        ));
    }
    std::fs::write(dir.join("nat.yaml"), &text).expect("nat config");
    netmgrd::setup::Setup::parse(&dir.join("nat.yaml"), &text).expect("nat config")
}

/// Applying 1,000 DNAT entries: netmgrd's own transaction, next to `nft -f` and iptables.
fn nat_bench(dir: &std::path::Path, nft: &mut Nft) -> NatFigures {
    let (mut build, mut reload, mut nft_f) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rules, mut elements) = (0, 0);
    for round in 0..7u16 {
        let spec = nat_config(dir, 80).owned.expect("a table").table;
        rules = spec.rule_count();
        elements = spec.elements.values().map(|e| e.len()).sum();
        let t = Instant::now();
        netmgrd::nft::build_owned_table(nft, &spec, &spec.elements, None).expect("build");
        build.push(ms(t.elapsed()));
        let changed = nat_config(dir, 81 + round).owned.expect("a table").table;
        let t = Instant::now();
        netmgrd::nft::build_owned_table(nft, &changed, &changed.elements, Some(&spec)).expect("reload");
        reload.push(ms(t.elapsed()));
        let file = dir.join("nat.nft");
        std::fs::write(&file, spec.render()).expect("write");
        let t = Instant::now();
        sh(&format!("nft -f {}", file.display()));
        nft_f.push(ms(t.elapsed()));
    }
    netmgrd::nft::delete_owned_table(nft, &TableRef::parse("inet netmgrd").expect("table")).expect("delete");
    let iptables_ms =
        Command::new("iptables").arg("--version").output().ok().filter(|o| o.status.success()).map(|_| {
            let t = Instant::now();
            for i in 0..NAT_RULES {
                let a = Ipv4Addr::from(0xC612_8000u32 + i as u32);
                sh(&format!(
                    "iptables -t nat -A PREROUTING -i eth0 -p tcp --dport {} -j DNAT --to-destination {a}:80",
                    10_000 + i
                ));
            }
            let elapsed = ms(t.elapsed());
            sh("iptables -t nat -F PREROUTING");
            elapsed
        });
    NatFigures {
        build: stats(build),
        reload: stats(reload),
        nft_f: stats(nft_f),
        rules,
        elements,
        iptables_ms,
    }
}

struct DockerFigures {
    start: Stats,
    stop: Stats,
    burst_start_ms: f64,
    burst_start_batches: u64,
    burst_stop_ms: f64,
    burst_stop_batches: u64,
}

fn container(i: u32) -> (FakeContainer, Elem) {
    let a = Ipv4Addr::from(0xC612_4000u32 + i); // 198.18.64.0 and up
    let c = FakeContainer::new(&format!("{i:x}"), &format!("web-{i}")).label("app", "web").net(
        "bench",
        &a.to_string(),
        "",
    );
    (c, Elem::Addr(IpAddr::V4(a)))
}

/// A second netmgrd in the namespace following a test Engine into `inet filter web4`.
fn docker_bench(bin: &str, dir: &std::path::Path, nft: &mut Nft) -> DockerFigures {
    sh("nft add set inet filter web4 '{ type ipv4_addr; }'");
    let engine = FakeEngine::start(&dir.join("docker.sock"));
    std::fs::write(
        dir.join("docker.yaml"),
        format!(
            "docker:\n  socket: {}\n  sets: [{{ ipv4_set: web4, match: {{ labels: {{ app: web }} }} }}]\n",
            engine.path.display()
        ),
    )
    .expect("config");
    let socket = dir.join("docker-ctl.sock");
    let mut child = spawn_netmgrd(bin, &dir.join("docker.yaml"), &socket, None);
    let set = SetId {
        table: TableRef::parse("inet filter").expect("table"),
        name: "web4".into(),
        kind: SetKind::Ipv4Addr,
    };
    let t0 = Instant::now();
    while engine.subscribers() == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for i in 0..TRIALS as u32 {
        let (c, e) = container(i);
        let name = format!("web-{i}");
        let t = Instant::now();
        engine.run(c);
        wait_set(nft, &set, |s| s.contains(&e), Duration::from_secs(2)).expect("container added");
        start.push(ms(t.elapsed()));
        let t = Instant::now();
        engine.stop_container(&name);
        wait_set(nft, &set, |s| !s.contains(&e), Duration::from_secs(2)).expect("container removed");
        stop.push(ms(t.elapsed()));
        engine.remove(&name);
    }
    let all: Vec<(FakeContainer, Elem)> = (1000..1000 + DOCKER_BURST).map(container).collect();
    let want: BTreeSet<Elem> = all.iter().map(|(_, e)| *e).collect();
    let before = nft_batches(bin, &socket);
    let t = Instant::now();
    for (c, _) in &all {
        engine.run(c.clone());
    }
    wait_set(nft, &set, |s| *s == want, Duration::from_secs(10)).expect("burst exact");
    let burst_start_ms = ms(t.elapsed());
    let mid = nft_batches(bin, &socket);
    let t = Instant::now();
    for i in 1000..1000 + DOCKER_BURST {
        engine.stop_container(&format!("web-{i}"));
    }
    wait_set(nft, &set, |s| s.is_empty(), Duration::from_secs(10)).expect("burst emptied");
    let burst_stop_ms = ms(t.elapsed());
    let after = nft_batches(bin, &socket);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    DockerFigures {
        start: stats(start),
        stop: stats(stop),
        burst_start_ms,
        burst_start_batches: mid - before,
        burst_stop_ms,
        burst_stop_batches: after - mid,
    }
}

/// netmgrd in the foreground; with `log`, debug lines go there (the idle check reads them).
fn spawn_netmgrd(
    bin: &str,
    config: &std::path::Path,
    socket: &std::path::Path,
    log: Option<&std::path::Path>,
) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--config"]).arg(config).arg("--socket").arg(socket).args(["--log-target", "stderr"]);
    cmd.args(["--log-level", if log.is_some() { "debug" } else { "warn" }]).stdout(Stdio::null());
    if let Some(l) = log {
        cmd.stderr(std::fs::File::create(l).expect("log"));
    }
    cmd.spawn().expect("start netmgrd")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

fn nft_batches(bin: &str, socket: &std::path::Path) -> u64 {
    let out = Command::new(bin)
        .args(["ctl", "--json", "--socket"])
        .arg(socket)
        .arg("status")
        .output()
        .expect("ctl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["result"]["nft_batches"].as_u64().unwrap_or(0)
}
