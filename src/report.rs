//! Typed replies of the control commands: the daemon fills them, serde turns them into the
//! JSON line, and `netmgrd ctl` reads the same types back and renders them as text.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether a managed set could be read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Ok,
    Missing,
    Error,
    Unknown,
}

impl HealthState {
    fn name(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::Missing => "missing",
            HealthState::Error => "error",
            HealthState::Unknown => "unknown",
        }
    }
}

/// The Docker Engine connection as the source sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineState {
    /// Docker is not configured.
    #[default]
    Off,
    Connecting,
    Syncing,
    Connected,
    Disconnected,
}

impl EngineState {
    pub fn name(self) -> &'static str {
        match self {
            EngineState::Off => "off",
            EngineState::Connecting => "connecting",
            EngineState::Syncing => "syncing",
            EngineState::Connected => "connected",
            EngineState::Disconnected => "disconnected",
        }
    }
}

/// One managed set in `status`: its size and health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSummary {
    pub set: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub elements: usize,
    pub health: HealthState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SetSummary {
    fn line(&self) -> String {
        let error = self.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
        format!(
            "  set {} ({}): {} element(s), {}{error}\n",
            self.set,
            self.kind,
            self.elements,
            self.health.name()
        )
    }
}

/// One managed set in `sets`: its elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetListing {
    pub set: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Who fills it: `zone wan`, `docker.sets[0]`, `docker.publish`, `owned table`.
    pub owner: String,
    /// The zone, for zone sets (rust-network-mgr users look for it).
    #[serde(default)]
    pub zone: Option<String>,
    pub health: HealthState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elements: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceReport {
    pub name: String,
    pub present: bool,
    pub up: bool,
    pub ifindex: Option<u32>,
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneReport {
    pub interfaces: Vec<InterfaceReport>,
    pub sets: Vec<SetSummary>,
}

/// The Docker Engine connection as the source sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub state: EngineState,
    pub socket: String,
    pub api_version: Option<String>,
    pub error: Option<String>,
    pub reconnects: u64,
    /// Unix time of the last event line from the Engine.
    pub last_event_unix: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerReport {
    #[serde(flatten)]
    pub engine: EngineStatus,
    pub synced: bool,
    pub containers: usize,
    pub sets: Vec<SetSummary>,
    /// What is wrong with `docker.networks` / `docker.containers` that netmgrd will not change,
    /// and network requests the Engine refused (retried every 30 s).
    #[serde(default)]
    pub network_problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    /// The uid netmgrd runs as and its effective capabilities (`CapEff`, hex).
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub cap_eff: String,
    pub uptime_s: u64,
    pub config: String,
    /// False until the first rtnetlink dump.
    pub ready: bool,
    pub zones: BTreeMap<String, ZoneReport>,
    pub docker: Option<DockerReport>,
    /// Every link's state (`off` .. `configured`) and its last hook run.
    #[serde(default)]
    pub links: Vec<LinkReport>,
    /// The best state over all links but loopback.
    #[serde(default)]
    pub manager_state: String,
    /// netmgrd's policy rules and routes (absent without `policy_routing:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_routing: Option<PolicyReport>,
    /// How cgroups are followed (absent without a `cgroups:` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<CgroupsReport>,
    /// Sets of cgroup ids (`cgroups.sets`).
    #[serde(default)]
    pub cgroup_sets: Vec<SetSummary>,
    /// The owned table's sets other than the publish maps.
    #[serde(default)]
    pub owned_sets: Vec<SetSummary>,
    /// Foreign nftables changes netmgrd repaired.
    #[serde(default)]
    pub foreign_changes: ForeignReport,
    pub nft_batches: u64,
    pub reloads: u64,
    pub last_error: Option<String>,
}

/// Repairs of changes other processes made to what netmgrd owns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignReport {
    /// Foreign commits after which netmgrd restored something.
    pub repaired: u64,
    /// Times notifications were lost and everything was re-read.
    pub lost: u64,
    pub last: Option<RepairReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    pub pid: u32,
    pub process: String,
    pub age_s: u64,
    /// Elements added back and foreign elements removed.
    pub added: usize,
    pub removed: usize,
    /// The owned table was rebuilt.
    pub rebuilt_table: bool,
}

impl Status {
    pub fn render(&self) -> String {
        let mut out = format!(
            "netmgrd {} (pid {}, uid {}, CapEff {}), up {}s, config {}{}\n",
            self.version,
            self.pid,
            self.uid,
            self.cap_eff,
            self.uptime_s,
            self.config,
            if self.ready { "" } else { " (waiting for the first rtnetlink dump)" }
        );
        for (zone, z) in &self.zones {
            let _ = writeln!(out, "zone {zone}");
            for i in &z.interfaces {
                let state = match (i.present, i.up) {
                    (true, true) => "up",
                    (true, false) => "down",
                    _ => "absent",
                };
                let _ = writeln!(out, "  interface {}: {state} {}", i.name, i.addresses.join(" "));
            }
            for set in &z.sets {
                out.push_str(&set.line());
            }
        }
        if let Some(d) = &self.docker {
            let error = d.engine.error.as_ref().map(|e| format!(", last error: {e}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "docker {} ({}), API {}, {} container(s), {} reconnect(s){error}",
                d.engine.state.name(),
                d.engine.socket,
                d.engine.api_version.as_deref().unwrap_or("unknown"),
                d.containers,
                d.engine.reconnects
            );
            for set in &d.sets {
                out.push_str(&set.line());
            }
        }
        if self.cgroups.is_some() || !self.cgroup_sets.is_empty() {
            out.push_str("cgroups\n");
            if let Some(c) = &self.cgroups {
                let _ = writeln!(
                    out,
                    "  {} on {}: {} cgroup(s){}, {} restart(s) of journalctl, {} bad line(s), error: {}",
                    c.follow.watch,
                    c.follow.root,
                    c.known,
                    if c.ready { "" } else { " (first scan pending)" },
                    c.follow.restarts,
                    c.follow.bad_lines,
                    c.follow.error.as_deref().unwrap_or("none")
                );
            }
            for set in &self.cgroup_sets {
                out.push_str(&set.line());
            }
        }
        if !self.owned_sets.is_empty() {
            out.push_str("owned table\n");
            for set in &self.owned_sets {
                out.push_str(&set.line());
            }
        }
        let f = &self.foreign_changes;
        let _ = write!(out, "foreign changes: {} repaired", f.repaired);
        if let Some(l) = &f.last {
            let table = if l.rebuilt_table { ", owned table rebuilt" } else { "" };
            let _ = write!(
                out,
                " (last: pid {} {}, {} s ago, +{} -{} elements{table})",
                l.pid, l.process, l.age_s, l.added, l.removed
            );
        }
        if f.lost > 0 {
            let _ = write!(out, ", {} full re-read(s) after lost notifications", f.lost);
        }
        out.push('\n');
        let _ = write!(
            out,
            "nft batches: {}, reloads: {}, last error: {}",
            self.nft_batches,
            self.reloads,
            self.last_error.as_deref().unwrap_or("none")
        );
        out
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetReport {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub name: String,
    /// The short id (12 characters), as `docker ps` shows it.
    pub id: String,
    pub networks: BTreeMap<String, NetReport>,
    /// `[HOST_IP:]HOST_PORT->CONTAINER_PORT/PROTO`.
    pub ports: Vec<String>,
    /// The docker sets its addresses are in.
    pub sets: Vec<String>,
}

/// netmgrd's policy routing rules and routes, in `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub rules: usize,
    pub routes: usize,
    pub error: Option<String>,
}

/// One finished hook script.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// The script's file name.
    pub script: String,
    /// The state (directory) it ran for.
    pub state: String,
    /// Exit code when it exited, the signal when it was killed.
    pub exit: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// It ran past `hooks.timeout` and was sent SIGTERM (and SIGKILL 5 s later if needed).
    pub timed_out: bool,
}

/// A link's state and the last hook that ran for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkReport {
    pub name: String,
    pub index: u32,
    pub state: String,
    pub zone: Option<String>,
    pub last_hook: Option<HookRun>,
}

/// The state of the cgroup source: its mode and what last went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupFollow {
    /// `inotify` or `journal`.
    pub watch: String,
    pub root: String,
    /// journalctl restarts since start (journal mode).
    #[serde(default)]
    pub restarts: u64,
    /// Journal lines that did not decode, or were too long.
    #[serde(default)]
    pub bad_lines: u64,
    pub error: Option<String>,
}

/// How cgroups are followed, in `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupsReport {
    #[serde(flatten)]
    pub follow: CgroupFollow,
    /// Cgroups under the root known now.
    pub known: usize,
    /// The first scan is done (until then cgroup sets are left alone).
    pub ready: bool,
}

/// One cgroup a cgroup set names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CgroupReport {
    /// Relative to the cgroup root.
    pub path: String,
    pub id: u64,
    pub set: String,
    /// False when its depth differs from the set's `level` (it can never match: left out).
    pub in_set: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpEntry {
    pub command: String,
    pub does: String,
}

/// Readable text for a command's `result`, read back into its reply type.
pub fn render(command: &str, result: serde_json::Value) -> Result<String, serde_json::Error> {
    Ok(match command {
        "status" => serde_json::from_value::<Status>(result)?.render(),
        "sets" => serde_json::from_value::<Vec<SetListing>>(result)?
            .iter()
            .map(|s| format!("{} ({}, {}): {}", s.set, s.owner, s.health.name(), s.elements.join(" ")))
            .collect::<Vec<_>>()
            .join("\n"),
        "containers" => serde_json::from_value::<Vec<ContainerReport>>(result)?
            .iter()
            .map(|c| {
                let nets: Vec<String> = c
                    .networks
                    .iter()
                    .map(|(n, a)| {
                        let ips: Vec<String> = a
                            .ipv4
                            .map(|v| v.to_string())
                            .into_iter()
                            .chain(a.ipv6.map(|v| v.to_string()))
                            .collect();
                        format!("{n}={}", ips.join(","))
                    })
                    .collect();
                format!(
                    "{} {} nets: {} ports: {} sets: {}",
                    c.name,
                    c.id,
                    nets.join(" "),
                    c.ports.join(" "),
                    c.sets.join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "cgroups" => serde_json::from_value::<Vec<CgroupReport>>(result)?
            .iter()
            .map(|c| {
                let note = if c.in_set { "" } else { " (left out: not at the set's level)" };
                format!("{} {} {}{note}", c.set, c.id, c.path)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "help" => serde_json::from_value::<Vec<HelpEntry>>(result)?
            .iter()
            .map(|c| format!("{:8} {}", c.command, c.does))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => match result {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_renders() {
        let set = SetSummary {
            set: "inet filter wan_ips".into(),
            kind: "ipv4_addr".into(),
            elements: 2,
            health: HealthState::Missing,
            error: Some("set inet filter wan_ips does not exist".into()),
        };
        let status = Status {
            version: "0.1.0".into(),
            pid: 7,
            uid: 0,
            cap_eff: "000001ffffffffff".into(),
            uptime_s: 3,
            config: "/etc/netmgrd/config.yaml".into(),
            ready: true,
            zones: [(
                "wan".to_string(),
                ZoneReport {
                    interfaces: vec![InterfaceReport {
                        name: "eth0".into(),
                        present: true,
                        up: true,
                        ifindex: Some(2),
                        addresses: vec!["203.0.113.5/24".into()],
                    }],
                    sets: vec![set],
                },
            )]
            .into(),
            docker: None,
            owned_sets: vec![],
            links: vec![],
            manager_state: "off".into(),
            policy_routing: None,
            cgroups: Some(CgroupsReport {
                follow: CgroupFollow {
                    watch: "journal".into(),
                    root: "/sys/fs/cgroup".into(),
                    restarts: 1,
                    bad_lines: 2,
                    error: Some("journalctl ended".into()),
                },
                known: 40,
                ready: true,
            }),
            cgroup_sets: vec![],
            foreign_changes: ForeignReport {
                repaired: 12,
                lost: 0,
                last: Some(RepairReport {
                    pid: 4242,
                    process: "nft".into(),
                    age_s: 3,
                    added: 2,
                    removed: 1,
                    rebuilt_table: false,
                }),
            },
            nft_batches: 4,
            reloads: 1,
            last_error: None,
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["zones"]["wan"]["sets"][0]["health"], "missing");
        assert_eq!(json["zones"]["wan"]["sets"][0]["type"], "ipv4_addr");
        let text = render("status", json).unwrap();
        assert!(text.contains("zone wan\n  interface eth0: up 203.0.113.5/24\n"), "{text}");
        assert!(
            text.contains("  set inet filter wan_ips (ipv4_addr): 2 element(s), missing: set inet"),
            "{text}"
        );
        assert!(
            text.contains("foreign changes: 12 repaired (last: pid 4242 nft, 3 s ago, +2 -1 elements)\n"),
            "{text}"
        );
        assert!(
            text.contains("cgroups\n  journal on /sys/fs/cgroup: 40 cgroup(s), 1 restart(s) of journalctl, 2 bad line(s), error: journalctl ended\n"),
            "{text}"
        );
        assert!(text.ends_with("nft batches: 4, reloads: 1, last error: none"), "{text}");
        assert!(render("status", serde_json::json!({"version": 1})).is_err(), "a reply of another shape");
    }
}
