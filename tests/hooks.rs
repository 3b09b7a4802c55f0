//! Hook scripts on link state changes: the real binary in a private namespace, real veth
//! links, scripts in a hooks directory of the test's own.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STATES: [&str; 6] = ["off", "no-carrier", "carrier", "degraded", "routable", "configured"];

fn write_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write hook");
    std::process::Command::new("chmod").arg("+x").arg(path).status().expect("chmod");
}

/// A hooks dir where every state's `log.sh` appends `STATE|OLD_STATE|LINK|LINKINDEX|ZONE|ADDRESSES`.
fn logging_hooks(ns: &Netns, extra: &str) -> (PathBuf, PathBuf) {
    let dir = ns.dir.join("hooks");
    let log = ns.dir.join("events.log");
    for s in STATES.iter().chain(["manager"].iter()) {
        write_script(
            &dir.join(format!("{s}.d/50-log.sh")),
            &format!(
                "echo \"$STATE|$OLD_STATE|$LINK|$LINKINDEX|$ZONE|$ADDRESSES\" >> {}\n{extra}",
                log.display()
            ),
        );
    }
    (dir, log)
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(String::from).collect()
}

/// Lines for link `v0` only (manager.d lines have an empty LINK).
fn v0_lines(log: &Path) -> Vec<String> {
    lines(log).into_iter().filter(|l| l.split('|').nth(2) == Some("v0")).collect()
}

fn setup(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    // No IPv6 link-local addresses: the states follow only what the test does.
    ns.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
    ns.sh("ip link add v0 type veth peer name v1");
    ns.nft("table inet filter {\n  set lan_ips { type ipv4_addr; }\n  set lan_ipv6 { type ipv6_addr; }\n}\n");
    ns
}

fn config(dir: &Path, timeout: &str) -> String {
    format!(
        "interfaces:\n  - {{ name: v0, zone: lan }}\nhooks:\n  dir: {}\n  timeout: {timeout}\n  max_parallel: 4\n  emit_json: true\n",
        dir.display()
    )
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn hooks_run_with_the_link_state_and_env_on_up_down_and_address_changes() {
    let ns = setup("hk");
    let (dir, log) = logging_hooks(&ns, "");
    write_script(
        &dir.join("configured.d/60-json.sh"),
        &format!("printf '%s' \"$JSON\" > {}", ns.dir.join("json").display()),
    );
    let d = Daemon::start(&ns, &config(&dir, "10s"));
    let index = ns.sh("cat /sys/class/net/v0/ifindex").trim().to_string();
    // At start: v0 is down.
    assert!(
        wait_until(WAIT, || v0_lines(&log) == vec![format!("off||v0|{index}|lan|")]),
        "{:?}\n{}",
        lines(&log),
        d.log_text()
    );
    ns.sh("ip link set v1 up && ip link set v0 up");
    assert!(
        wait_until(WAIT, || v0_lines(&log).last().is_some_and(|l| l.starts_with("carrier|"))),
        "{:?}",
        lines(&log)
    );
    ns.sh("ip addr add 192.0.2.1/24 dev v0");
    let want_routable = format!("routable|carrier|v0|{index}|lan|192.0.2.1/24");
    let want_configured = format!("configured|routable|v0|{index}|lan|192.0.2.1/24");
    assert!(
        wait_until(WAIT, || v0_lines(&log).ends_with(&[want_routable.clone(), want_configured.clone()])),
        "{:?}",
        lines(&log)
    );
    assert_eq!(
        ns.set_elements("inet filter", "lan_ips"),
        Some(set_of(&["192.0.2.1"])),
        "configured: the set is filled"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(ns.dir.join("json")).expect("json")).expect("JSON env");
    assert_eq!(json["link"], "v0");
    assert_eq!(json["state"], "configured");
    assert_eq!(json["addresses"][0], "192.0.2.1/24");
    ns.sh("ip addr del 192.0.2.1/24 dev v0");
    assert!(
        wait_until(WAIT, || v0_lines(&log).last().is_some_and(|l| l.starts_with("carrier|configured|"))),
        "{:?}",
        lines(&log)
    );
    ns.sh("ip link set v0 down");
    assert!(
        wait_until(WAIT, || v0_lines(&log).last().is_some_and(|l| l.starts_with("off|carrier|"))),
        "{:?}",
        lines(&log)
    );
    // The manager state follows the best link.
    assert!(lines(&log).iter().any(|l| l.starts_with("configured|carrier||0|")), "{:?}", lines(&log));
    let status = d.ctl("status")["result"].clone();
    let v0 =
        status["links"].as_array().expect("links").iter().find(|l| l["name"] == "v0").expect("v0").clone();
    assert_eq!(v0["state"], "off", "{status}");
    assert!(
        wait_until(WAIT, || {
            let s = d.ctl("status")["result"].clone();
            s["links"].as_array().into_iter().flatten().any(|l| {
                l["name"] == "v0"
                    && l["last_hook"]["script"] == "50-log.sh"
                    && l["last_hook"]["exit"] == 0
                    && l["last_hook"]["state"] == "off"
            })
        }),
        "{}",
        d.ctl("status")
    );
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn a_hook_past_its_timeout_gets_sigterm_then_sigkill() {
    let ns = setup("hkt");
    let dir = ns.dir.join("hooks");
    // Ignores SIGTERM (and so does its sleep): only SIGKILL ends it.
    write_script(&dir.join("off.d/10-stubborn.sh"), "trap '' TERM\nsleep 30");
    write_script(&dir.join("off.d/20-plain.sh"), "exec sleep 30");
    let d = Daemon::start(&ns, &config(&dir, "1s"));
    let last = || {
        d.ctl("status")["result"]["links"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == "v0")
            .map(|l| l["last_hook"].clone())
    };
    assert!(
        wait_until(Duration::from_secs(15), || last().is_some_and(|h| h["script"] == "10-stubborn.sh")),
        "{}",
        d.log_text()
    );
    let h = last().expect("hook");
    assert_eq!((h["signal"].clone(), h["timed_out"].clone()), (Value::from(9), Value::Bool(true)), "{h}");
    let ms = h["duration_ms"].as_u64().expect("duration");
    assert!((5900..9000).contains(&ms), "SIGTERM at 1 s, SIGKILL 5 s later: {ms} ms");
    assert!(
        wait_until(Duration::from_secs(10), || last().is_some_and(|h| h["script"] == "20-plain.sh")),
        "{}",
        d.log_text()
    );
    let h = last().expect("hook");
    assert_eq!((h["signal"].clone(), h["timed_out"].clone()), (Value::from(15), Value::Bool(true)), "{h}");
    assert!(d.log_text().contains("SIGKILL"));
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn a_thousand_flaps_coalesce_into_a_few_runs_ending_in_the_final_state() {
    let ns = setup("hkf");
    let (dir, log) = logging_hooks(&ns, "sleep 0.05");
    let d = Daemon::start(&ns, &config(&dir, "10s"));
    ns.sh("ip link set v1 up");
    assert!(wait_until(WAIT, || !v0_lines(&log).is_empty()), "{}", d.log_text());
    let mut batch = String::new();
    for _ in 0..1000 {
        batch.push_str("link set v0 up\nlink set v0 down\n");
    }
    batch.push_str("link set v0 up\n");
    std::fs::write(ns.dir.join("flaps"), batch).expect("batch");
    ns.sh(&format!("ip -batch {}", ns.dir.join("flaps").display()));
    // Quiet again: no new run for a second, and the last one is the final state.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let count = loop {
        let before = v0_lines(&log).len();
        std::thread::sleep(Duration::from_secs(1));
        let now = v0_lines(&log);
        if now.len() == before && now.last().is_some_and(|l| l.starts_with("carrier|")) {
            break now.len();
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {:?}\n{}", lines(&log), d.log_text());
    };
    assert!(count < 60, "2,001 state changes ran {count} hooks");
    assert_eq!(d.ctl("ping")["ok"], true);
}

#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn a_hook_writing_10_mb_and_one_leaving_a_daemon_behind_finish_without_zombies() {
    let ns = setup("hko");
    let dir = ns.dir.join("hooks");
    let marker = format!("3001.{}", std::process::id());
    write_script(&dir.join("off.d/10-loud.sh"), "head -c 10000000 /dev/zero | tr '\\0' 'x' | fold -w 100");
    write_script(
        &dir.join("off.d/20-daemon.sh"),
        &format!("sleep {marker} &\necho started a daemon\nexit 0"),
    );
    let d = Daemon::start(&ns, &config(&dir, "20s"));
    let hook = |name: &str| {
        d.ctl("status")["result"]["links"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == "v0")
            .and_then(|l| (l["last_hook"]["script"] == name).then(|| l["last_hook"].clone()))
    };
    // The daemon's sleep keeps the pipes open; the hook is done when it exits.
    assert!(wait_until(Duration::from_secs(20), || hook("20-daemon.sh").is_some()), "{}", d.ctl("status"));
    assert_eq!(hook("20-daemon.sh").expect("hook")["exit"], 0);
    let log = d.log_text();
    assert!(log.contains("hook 10-loud.sh finished: exit Some(0)"), "the 10 MB hook ran to the end");
    assert!(log.contains("more output line(s) not logged"), "output is capped");
    assert!(log.len() < 1_000_000, "log of {} bytes", log.len());
    // No zombie: netmgrd has no child left (the sleep was adopted by init, not by netmgrd).
    let pid = d.pid_cached();
    // (v1 runs the same off.d scripts; wait for those too.)
    let children = || ns.sh(&format!("cat /proc/{pid}/task/*/children"));
    assert!(
        wait_until(Duration::from_secs(20), || children().trim().is_empty()),
        "children left: {}",
        children()
    );
    assert_eq!(d.ctl("ping")["ok"], true);
    let _ = std::process::Command::new("pkill").args(["-f", &format!("sleep {marker}")]).status();
}
