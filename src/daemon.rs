//! The daemon's state between turns and what a turn does: apply events, answer control
//! requests, and reconcile once (plan -> diff -> at most one nftables batch).

use crate::config::{Config, OnExit};
use crate::diff::{self, Applied, SetChange};
use crate::elements::{SetId, SetKind};
use crate::event::{EngineStatus, Event, SignalKind};
use crate::event_loop::{Handler, Outgoing};
use crate::nft::{self, Nft, NftError};
use crate::observed::Observed;
use crate::plan::{self, managed_sets, Desired};
use crate::ruleset::OwnedTable;
use crate::wire::control::{reply_err, reply_ok, Request, COMMANDS};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Whether a managed set could be read and written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    Missing(String),
    Error(String),
}

/// How a config is (re)loaded: the daemon knows only the path and the CLI overrides.
pub struct ConfigSource {
    pub path: PathBuf,
    /// `--log-level` wins over the file.
    pub log_level_override: Option<log::LevelFilter>,
    /// `$DOCKER_HOST` as netmgrd started with it.
    pub docker_host: Option<String>,
}

impl ConfigSource {
    /// The Engine socket for a config, `None` when Docker is off.
    pub fn docker_socket(&self, config: &Config) -> Option<PathBuf> {
        config.docker.as_ref().map(|d| d.socket_path(self.docker_host.clone()))
    }
}

pub struct Daemon {
    config: Config,
    source: ConfigSource,
    nft: Nft,
    observed: Observed,
    applied: Applied,
    health: BTreeMap<SetId, Health>,
    started: Instant,
    last_error: Option<String>,
    engine: Option<EngineStatus>,
    /// The owned table as last built (what `ruleset` prints).
    owned: Option<OwnedTable>,
    /// A stale owned table from an earlier instance was looked for.
    owned_checked: bool,
    pub reloads: u64,
}

impl Daemon {
    /// Reads every managed set; the first reconcile waits for the first rtnetlink dump.
    pub fn new(config: Config, source: ConfigSource, nft: Nft) -> Daemon {
        let mut d = Daemon {
            config,
            source,
            nft,
            observed: Observed::default(),
            applied: Applied::new(),
            health: BTreeMap::new(),
            started: Instant::now(),
            last_error: None,
            engine: None,
            owned: None,
            owned_checked: false,
            reloads: 0,
        };
        let _ = d.sync_owned_table(true);
        d.enable_forwarding();
        d.refresh_all_sets();
        d
    }

    /// `nat.enable_forwarding`: IPv4 and IPv6 forwarding on (never turned off by netmgrd).
    fn enable_forwarding(&mut self) {
        if !self.config.nat.as_ref().is_some_and(|n| n.enable_forwarding) {
            return;
        }
        for knob in ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"] {
            if std::fs::read_to_string(knob).is_ok_and(|v| v.trim() == "1") {
                continue;
            }
            match std::fs::write(knob, "1") {
                Ok(()) => log::info!("enabled forwarding: {knob}"),
                Err(e) => log::error!("cannot enable forwarding ({knob}): {e}"),
            }
        }
    }

    /// Brings the owned table in line with the config: builds it (atomically replacing what
    /// was there, with its sets already holding their current elements), or removes the one a
    /// previous config or instance left. `force` rebuilds even when nothing changed (the
    /// table vanished). On error the previous table stays in force (the batch is atomic).
    fn sync_owned_table(&mut self, force: bool) -> Result<(), String> {
        let spec = self.config.owned.as_ref().map(|(t, _)| t.clone());
        if !force && spec == self.owned && (spec.is_some() || self.owned_checked) {
            return Ok(());
        }
        self.owned_checked = true;
        let stale = self
            .owned
            .as_ref()
            .map(|o| o.table.clone())
            .unwrap_or_else(|| self.config.nftables.owned_table.clone());
        if spec.as_ref().map(|s| &s.table) != Some(&stale) && self.nft.table_exists(&stale).unwrap_or(true) {
            if let Err(e) = nft::delete_owned_table(&mut self.nft, &stale) {
                log::warn!("cannot remove table {stale}: {e}");
            }
        }
        self.applied.retain(|s, _| s.table != stale);
        let Some(spec) = spec else {
            self.owned = None;
            return Ok(());
        };
        let desired = self.desired();
        let elements: crate::plan::Desired =
            spec.sets.iter().map(|s| (s.clone(), desired.get(s).cloned().unwrap_or_default())).collect();
        // After `force` (the table vanished) nothing of the previous build can be relied on.
        let previous = if force { None } else { self.owned.as_ref() };
        match nft::build_owned_table(&mut self.nft, &spec, &elements, previous) {
            Ok(()) => {
                log::info!("built table {} ({} rules)", spec.table, spec.rule_count());
                self.applied.retain(|s, _| s.table != spec.table);
                self.applied.extend(elements);
                self.owned = Some(spec);
                Ok(())
            }
            Err(e) => {
                let msg = format!("table {}: {e}", spec.table);
                log::error!("{msg}; the previous table stays in force");
                self.last_error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn set_health(&mut self, set: &SetId, health: Health) {
        let previous = self.health.insert(set.clone(), health.clone());
        if previous.as_ref() == Some(&health) {
            return; // logged once, not on every retry
        }
        match &health {
            Health::Ok if previous.is_some() => log::info!("set {set} is usable again"),
            Health::Ok => {}
            Health::Missing(m) | Health::Error(m) => {
                log::warn!("{m}; it is skipped until `resync` or reload");
                self.last_error = Some(m.clone());
            }
        }
    }

    /// Re-reads one managed set into `applied` (the kernel is the truth).
    fn refresh_set(&mut self, set: &SetId) {
        match self.nft.read_set(set) {
            Ok(elems) => {
                self.applied.insert(set.clone(), elems);
                self.set_health(set, Health::Ok);
            }
            Err(e @ NftError::Missing { .. }) => {
                self.applied.remove(set);
                let hint = format!("{e} (declare it: `set {} {{ {}; }}`)", set.name, set.kind.declaration());
                self.set_health(set, Health::Missing(hint));
            }
            Err(e) => {
                self.applied.remove(set);
                self.set_health(set, Health::Error(e.to_string()));
            }
        }
    }

    fn refresh_all_sets(&mut self) {
        let managed: Vec<SetId> = managed_sets(&self.config).into_iter().map(|(_, s)| s).collect();
        // The owned table is ours: if someone removed it (`nft flush ruleset`), build it again.
        if let Some(t) = self.owned.as_ref().map(|o| o.table.clone()) {
            if !self.nft.table_exists(&t).unwrap_or(true) {
                log::warn!("table {t} is gone; building it again");
                let _ = self.sync_owned_table(true);
            }
        }
        // Sets dropped from the config keep their applied entry so diff can empty them.
        for set in &managed {
            self.refresh_set(set);
        }
        self.health.retain(|s, _| managed.contains(s));
    }

    fn desired(&self) -> Desired {
        plan::plan(&self.config, &self.observed)
    }

    /// One reconcile: at most one batch (plus one retry after re-reading on a stale view).
    fn reconcile(&mut self) {
        if !self.observed.net_ready {
            return;
        }
        let desired = self.desired();
        let mut changes = diff::diff(&desired, &self.applied);
        // Containers not known yet are not containers gone: leave docker sets alone until
        // the first full sync.
        if !self.observed.docker_ready {
            changes.retain(|c| !plan::is_docker_set(&self.config, &c.set));
        }
        if changes.is_empty() {
            return;
        }
        match self.nft.apply(&changes) {
            Ok(()) => self.applied_ok(&desired, &changes),
            Err(e) => {
                log::warn!("nftables refused the update: {e}; re-reading the sets and retrying once");
                let touched: Vec<SetId> = changes.iter().map(|c| c.set.clone()).collect();
                for set in &touched {
                    if desired.contains_key(set) {
                        self.refresh_set(set);
                    } else if let Ok(elems) = self.nft.read_set(set) {
                        self.applied.insert(set.clone(), elems);
                    } else {
                        self.applied.remove(set);
                    }
                }
                let retry = diff::diff(&desired, &self.applied);
                if retry.is_empty() {
                    return;
                }
                match self.nft.apply(&retry) {
                    Ok(()) => self.applied_ok(&desired, &retry),
                    Err(e) => {
                        let msg = e.to_string();
                        log::error!("nftables refused the update again: {msg}");
                        if let NftError::Rejected { set: Some(name), .. } = &e {
                            if let Some(set) =
                                retry.iter().map(|c| &c.set).find(|s| s.to_string() == *name).cloned()
                            {
                                self.applied.remove(&set);
                                self.set_health(&set, Health::Error(msg.clone()));
                            }
                        }
                        self.last_error = Some(msg);
                    }
                }
            }
        }
    }

    fn applied_ok(&mut self, desired: &Desired, changes: &[SetChange]) {
        for c in changes {
            log::info!("{}: {}", c.set, describe(c));
        }
        diff::record(&mut self.applied, desired, changes);
    }

    fn reload(&mut self, out: &mut Vec<Outgoing>) -> Result<(), String> {
        let config = Config::load(&self.source.path).map_err(|e| e.to_string())?;
        let previous = std::mem::replace(&mut self.config, config);
        if let Err(e) = self.sync_owned_table(false) {
            // The kernel refused the new table: keep running the old config whole.
            self.config = previous;
            return Err(e);
        }
        let docker = self.source.docker_socket(&self.config);
        if docker != self.source.docker_socket(&previous) {
            // A different Engine (or none): what was known of containers no longer holds.
            self.observed.containers.clear();
            self.observed.docker_ready = false;
            self.engine = None;
            out.push(Outgoing::DockerSocket(docker));
        }
        if self.config.control != previous.control {
            log::warn!("control socket settings changed; they take effect at the next restart");
        }
        for w in &self.config.warnings {
            log::warn!("{w}");
        }
        set_log_level(&self.config, &self.source);
        self.enable_forwarding();
        self.reloads += 1;
        self.refresh_all_sets();
        log::info!("reloaded {}", self.source.path.display());
        Ok(())
    }

    /// `on_exit: flush` empties every managed set before stopping.
    fn stop(&mut self) {
        if self.config.nftables.on_exit == OnExit::Flush {
            let owned = self.owned.as_ref().map(|o| o.table.clone());
            let changes: Vec<SetChange> = diff::flush_all(&self.applied)
                .into_iter()
                .filter(|c| owned.as_ref() != Some(&c.set.table))
                .collect();
            match self.nft.apply(&changes) {
                Ok(()) => log::info!("flushed {} managed set(s)", changes.len()),
                Err(e) => log::error!("flush at exit failed: {e}"),
            }
            if let Some(t) = owned {
                match nft::delete_owned_table(&mut self.nft, &t) {
                    Ok(()) => log::info!("deleted table {t}"),
                    Err(e) => log::error!("cannot delete table {t}: {e}"),
                }
            }
        }
        log::info!("stopping");
    }

    fn answer(&mut self, request: Request) -> String {
        match request {
            Request::Ping => reply_ok(json!("pong")),
            Request::Status => reply_ok(self.status()),
            Request::Sets => reply_ok(self.sets()),
            Request::Containers => reply_ok(self.containers()),
            Request::Ruleset => reply_ok(json!(self.ruleset())),
            Request::Help => {
                reply_ok(COMMANDS.iter().map(|(c, d)| json!({"command": c, "does": d})).collect())
            }
            // Reload and resync ran before the reconcile (see `handle`); here only the reply.
            Request::Reload | Request::Resync => reply_ok(json!("done")),
        }
    }

    pub fn status(&self) -> Value {
        let mut zones = serde_json::Map::new();
        let managed = managed_sets(&self.config);
        let docker = self.config.docker.as_ref().map(|_| {
            let e = self.engine.clone().unwrap_or_default();
            let sets: Vec<Value> = managed
                .iter()
                .filter(|(owner, _)| owner == plan::DOCKER_OWNER || owner == plan::PUBLISH_OWNER)
                .map(|(_, s)| self.set_json(s, false))
                .collect();
            json!({
                "state": e.state,
                "socket": e.socket,
                "api_version": e.api_version,
                "error": e.error,
                "reconnects": e.reconnects,
                "last_event_unix": e.last_event_unix,
                "synced": self.observed.docker_ready,
                "containers": self.observed.containers.len(),
                "sets": sets,
            })
        });
        for zone in self.config.zone_names() {
            let interfaces: Vec<Value> = self
                .config
                .zone_interfaces(&zone)
                .iter()
                .map(|name| {
                    let link = self.observed.links_named(name).next();
                    let addrs: Vec<String> = link
                        .map(|l| self.observed.addresses_of(l.index).map(|a| a.prefix.to_string()).collect())
                        .unwrap_or_default();
                    json!({
                        "name": name,
                        "present": link.is_some(),
                        "up": link.is_some_and(|l| l.up),
                        "ifindex": link.map(|l| l.index),
                        "addresses": addrs,
                    })
                })
                .collect();
            let sets: Vec<Value> =
                managed.iter().filter(|(z, _)| *z == zone).map(|(_, s)| self.set_json(s, false)).collect();
            zones.insert(zone, json!({ "interfaces": interfaces, "sets": sets }));
        }
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "config": self.source.path.display().to_string(),
            "ready": self.observed.net_ready,
            "zones": zones,
            "docker": docker,
            "nft_batches": self.nft.batches_sent,
            "reloads": self.reloads,
            "last_error": self.last_error,
        })
    }

    fn set_json(&self, set: &SetId, with_elements: bool) -> Value {
        let (health, error) = match self.health.get(set) {
            Some(Health::Ok) => ("ok", None),
            Some(Health::Missing(m)) => ("missing", Some(m.clone())),
            Some(Health::Error(m)) => ("error", Some(m.clone())),
            None => ("unknown", None),
        };
        let elems = self.applied.get(set);
        let mut v = json!({
            "set": set.to_string(),
            "type": kind_name(set.kind),
            "elements": elems.map(|e| e.len()).unwrap_or(0),
            "health": health,
        });
        if let Some(e) = error {
            v["error"] = json!(e);
        }
        if with_elements {
            v["elements"] =
                json!(elems.map(|e| e.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap_or_default());
        }
        v
    }

    /// The owned table as applied now: its nft text and the elements of its sets.
    pub fn ruleset(&self) -> String {
        let Some(t) = &self.owned else {
            return "# netmgrd owns no table with this config\n".to_string();
        };
        let mut text = t.render();
        for set in &t.sets {
            let elems = self
                .applied
                .get(set)
                .map(|e| e.iter().map(|x| x.to_string()).collect::<Vec<_>>())
                .unwrap_or_default();
            if !elems.is_empty() {
                text.push_str(&format!(
                    "add element {} {} {{ {} }}\n",
                    set.table,
                    set.name,
                    elems.join(", ")
                ));
            }
        }
        text
    }

    /// Tracked containers, each with the docker sets its addresses are in.
    pub fn containers(&self) -> Value {
        let desired = self.desired();
        let docker_sets: Vec<(&SetId, _)> =
            desired.iter().filter(|(s, _)| plan::is_docker_set(&self.config, s)).collect();
        self.observed
            .containers
            .values()
            .map(|c| {
                let networks: serde_json::Map<String, Value> = c
                    .networks
                    .iter()
                    .map(|(n, a)| (n.clone(), json!({ "ipv4": a.ipv4, "ipv6": a.ipv6 })))
                    .collect();
                let ports: Vec<String> = c
                    .ports
                    .iter()
                    .map(|p| match p.host_ip {
                        Some(ip) => format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.proto.name()),
                        None => format!("{}->{}/{}", p.host_port, p.container_port, p.proto.name()),
                    })
                    .collect();
                let addrs: Vec<crate::elements::Elem> = c
                    .networks
                    .values()
                    .flat_map(|a| {
                        a.ipv4.map(std::net::IpAddr::V4).into_iter().chain(a.ipv6.map(std::net::IpAddr::V6))
                    })
                    .map(crate::elements::Elem::Addr)
                    .collect();
                let sets: Vec<String> = docker_sets
                    .iter()
                    .filter(|(_, elems)| addrs.iter().any(|a| elems.contains(a)))
                    .map(|(s, _)| s.to_string())
                    .collect();
                json!({
                    "name": c.name,
                    "id": c.id.chars().take(12).collect::<String>(),
                    "networks": networks,
                    "ports": ports,
                    "sets": sets,
                })
            })
            .collect()
    }

    pub fn sets(&self) -> Value {
        managed_sets(&self.config)
            .iter()
            .map(|(zone, s)| {
                let mut v = self.set_json(s, true);
                v["zone"] = json!(zone);
                v
            })
            .collect()
    }
}

fn kind_name(k: SetKind) -> &'static str {
    let d = k.declaration();
    d.strip_prefix("type ").unwrap_or(d)
}

/// "+192.0.2.1 -192.0.2.7", or counts when the change is large.
fn describe(c: &SetChange) -> String {
    if c.len() > 8 {
        return format!("+{} -{} elements", c.add.len(), c.del.len());
    }
    let mut parts: Vec<String> = c.add.iter().map(|e| format!("+{e}")).collect();
    parts.extend(c.del.iter().map(|e| format!("-{e}")));
    parts.join(" ")
}

pub fn set_log_level(config: &Config, source: &ConfigSource) {
    log::set_max_level(source.log_level_override.unwrap_or(config.log.level.to_filter()));
}

impl Handler for Daemon {
    fn handle(&mut self, events: Vec<Event>) -> (Vec<Outgoing>, bool) {
        let mut out = Vec::new();
        let mut requests = Vec::new();
        let mut stop = false;
        for ev in events {
            match ev {
                Event::Signal(SignalKind::Stop) => stop = true,
                Event::Signal(SignalKind::Reload) => {
                    if let Err(e) = self.reload(&mut out) {
                        log::error!("reload failed, keeping the running config: {e}");
                        self.last_error = Some(e);
                    }
                }
                Event::Signal(SignalKind::Child) => {
                    crate::sys::fd::reap_children();
                }
                Event::Control { client, request: Request::Reload } => match self.reload(&mut out) {
                    Ok(()) => requests.push((client, Request::Reload)),
                    Err(e) => {
                        log::error!("reload failed, keeping the running config: {e}");
                        self.last_error = Some(e.clone());
                        out.push(Outgoing::Reply { client, line: reply_err(&e) });
                    }
                },
                Event::Control { client, request: Request::Resync } => {
                    self.refresh_all_sets();
                    out.push(Outgoing::NetResync);
                    requests.push((client, Request::Resync));
                }
                Event::Control { client, request } => requests.push((client, request)),
                Event::NetResyncing => {}
                Event::Engine(status) => self.engine = Some(status),
                net => {
                    if self.observed.apply(&net) {
                        log::debug!("{net:?}");
                    }
                }
            }
        }
        self.reconcile();
        for (client, request) in requests {
            let line = self.answer(request);
            out.push(Outgoing::Reply { client, line });
        }
        if stop {
            self.stop();
        }
        (out, stop)
    }
}
