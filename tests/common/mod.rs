//! Test harness: a private network namespace per test, the real netmgrd binary inside it,
//! and deadline-based waits on real kernel state (nft sets, control replies).
#![allow(dead_code)]

pub mod fake_engine;
pub mod journald;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The binary under test: `$NETMGRD_BIN` when set (CI runs the suite again against the static
/// musl build), else the one cargo built for this test run.
pub fn netmgrd_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("NETMGRD_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_netmgrd").to_string())
    })
}

pub struct Netns {
    pub name: String,
    pub dir: PathBuf,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("nmt-{}-{}-{}", tag, std::process::id(), n);
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = Command::new("ip").args(["netns", "add", &name]).output().expect("ip netns add");
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        let ns = Netns { name, dir };
        ns.sh("ip link set lo up");
        ns
    }

    /// Runs a shell script inside the namespace; panics with its output when it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = self.try_sh(script);
        assert!(
            out.status.success(),
            "in {}: `{script}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_sh(&self, script: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .expect("ip netns exec")
    }

    /// Loads a ruleset from text.
    pub fn nft(&self, ruleset: &str) {
        let path = self.dir.join(format!("rules-{}.nft", COUNTER.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, ruleset).expect("write ruleset");
        self.sh(&format!("nft -f {}", path.display()));
    }

    /// A veth pair, both ends up, in this namespace.
    pub fn veth(&self, a: &str, b: &str) {
        self.sh(&format!(
            "ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"
        ));
    }

    /// Elements of a set as nft prints them (addresses, or `ADDR/LEN` for prefixes).
    /// Maps too: each element as its JSON text.
    pub fn set_elements(&self, table: &str, set: &str) -> Option<BTreeSet<String>> {
        let mut out = self.try_sh(&format!("nft -j list set {table} {set}"));
        if !out.status.success() {
            out = self.try_sh(&format!("nft -j list map {table} {set}"));
        }
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let mut elems = BTreeSet::new();
        for item in v["nftables"].as_array()? {
            let obj = if item["map"].is_object() { &item["map"] } else { &item["set"] };
            for e in obj["elem"].as_array().into_iter().flatten() {
                let text = match e {
                    Value::String(s) => s.clone(),
                    Value::Object(o) if o.contains_key("prefix") => {
                        format!("{}/{}", o["prefix"]["addr"].as_str().unwrap_or("?"), o["prefix"]["len"])
                    }
                    Value::Object(o) if o.contains_key("range") => {
                        format!(
                            "{}-{}",
                            o["range"][0].as_str().unwrap_or("?"),
                            o["range"][1].as_str().unwrap_or("?")
                        )
                    }
                    other => other.to_string(),
                };
                elems.insert(text);
            }
        }
        Some(elems)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub const WAIT: Duration = Duration::from_secs(5);

pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts netmgrd in `ns` with `config` and waits until it answers `ping` and has
    /// finished its first rtnetlink dump.
    pub fn start(ns: &Netns, config: &str) -> Daemon {
        let d = Daemon::spawn(ns, config);
        assert!(
            wait_until(WAIT, || d
                .try_ctl("status")
                .is_some_and(|v| v["result"]["ready"] == Value::Bool(true))),
            "netmgrd did not become ready; log:\n{}",
            d.log_text()
        );
        d
    }

    pub fn spawn(ns: &Netns, config: &str) -> Daemon {
        Daemon::spawn_env(ns, config, &[])
    }

    /// `spawn` with extra environment variables for netmgrd.
    pub fn spawn_env(ns: &Netns, config: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(ns, config, env, &[])
    }

    /// `spawn` with extra environment variables and extra `run` arguments.
    pub fn spawn_with(ns: &Netns, config: &str, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let config_path = ns.dir.join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let socket = ns.dir.join("ctl.sock");
        let log = ns.dir.join("netmgrd.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // `nsenter` (network namespace only) when the test sets NETMGRD_NSENTER: `ip netns exec`
        // remounts /sys, which hides the cgroup tree.
        let mut cmd = if env.iter().any(|(k, _)| *k == "NETMGRD_NSENTER") {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/var/run/netns/{}", ns.name));
            // A mount namespace of the test's (a private journald's /run), when given.
            if let Some((_, mnt)) = env.iter().find(|(k, _)| *k == "NETMGRD_MOUNTNS") {
                c.arg(format!("--mount={mnt}"));
            }
            c.arg(netmgrd_bin());
            c
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, netmgrd_bin()]);
            c
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&config_path)
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "debug", "--log-target", "stderr"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn netmgrd");
        Daemon { child: Some(child), socket, config: config_path, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one request line; the parsed reply, or None when nobody answers.
    pub fn try_ctl(&self, request: &str) -> Option<Value> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("{request}\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    pub fn ctl(&self, request: &str) -> Value {
        self.try_ctl(request).unwrap_or_else(|| panic!("no reply to `{request}`; log:\n{}", self.log_text()))
    }

    pub fn pid(&self) -> u32 {
        self.ctl("status")["result"]["pid"].as_u64().expect("pid") as u32
    }

    /// The pid without asking the daemon (it may not be reachable over the socket).
    pub fn pid_cached(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.pid();
        let out = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).output().expect("kill");
        assert!(out.status.success());
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `ip netns exec` execs netmgrd, so this is netmgrd's own pid.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
