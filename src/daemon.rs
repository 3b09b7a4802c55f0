//! The daemon's state between turns and what a turn does: apply events, answer control
//! requests, and reconcile once (plan -> diff -> at most one nftables batch). It talks to the
//! kernel only through [`Kernel`], so every path here is tested with the in-memory fake.

use crate::config::OnExit;
use crate::diff::{self, Applied, SetChange};
use crate::elements::{Desired, Elem, Family, SetId, SetKind, TableRef};
use crate::event::{EngineStatus, Event, NftCommit, SignalKind};
use crate::event_loop::{Handler, Lifecycle, Outgoing};
use crate::kernel::Kernel;
use crate::link_state::{link_state, manager_state, LinkState, Transition};
use crate::managed::Owner;
use crate::nft::NftError;
use crate::observed::Observed;
use crate::plan;
use crate::policy::PolicyLink;
use crate::report::{
    CgroupsReport, ContainerReport, DockerReport, ForeignReport, HealthState, HelpEntry, InterfaceReport,
    LinkReport, NetReport, RepairReport, SetListing, SetSummary, Status, ZoneReport,
};
use crate::ruleset::OwnedTable;
use crate::setup::Setup;
use crate::wire::control::{reply_err, reply_ok, Request, COMMANDS};
use crate::wire::nft_monitor::ObjectKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
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
    /// `--socket` wins over the file.
    pub socket_override: Option<PathBuf>,
    /// `$DOCKER_HOST` as netmgrd started with it.
    pub docker_host: Option<String>,
}

impl ConfigSource {
    /// The Engine socket for a config, `None` when Docker is off.
    pub fn docker_socket(&self, setup: &Setup) -> Option<PathBuf> {
        setup.config.docker.as_ref().map(|d| d.socket_path(self.docker_host.clone()))
    }

    /// Loads the config and applies the command line's overrides.
    pub fn load(&self) -> Result<Setup, crate::setup::SetupError> {
        let mut setup = Setup::load(&self.path)?;
        if let Some(s) = &self.socket_override {
            setup.config.control.socket = s.clone();
        }
        Ok(setup)
    }
}

const FORWARDING_KNOBS: [&str; 2] =
    ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"];

pub struct Daemon<K: Kernel> {
    setup: Setup,
    source: ConfigSource,
    kernel: K,
    observed: Observed,
    applied: Applied,
    health: BTreeMap<SetId, Health>,
    started: Instant,
    last_error: Option<String>,
    engine: Option<EngineStatus>,
    /// How the cgroup source follows the tree (None: cgroups are not followed).
    cgroup_follow: Option<crate::event::CgroupFollow>,
    /// Each link's state as last computed (ifindex -> name, state).
    link_states: BTreeMap<u32, (String, LinkState)>,
    manager_state: Option<LinkState>,
    /// netmgrd's policy routing state, and what the router was last told.
    policy: Option<crate::event::PolicyReport>,
    policy_links: Option<Vec<PolicyLink>>,
    /// PolicyLinks went out and the router has not reported back yet: those links are not
    /// `configured` until it has.
    policy_pending: bool,
    /// Docker network requests last sent, problems of the last plan, refused requests.
    net_actions: Vec<crate::docker_networks::NetAction>,
    net_problems: Vec<String>,
    net_refused: BTreeMap<String, String>,
    /// What is set up inside containers' namespaces, by container id.
    ns_applied: BTreeMap<String, crate::container_ns::NsSetup>,
    /// Main-table routes per ifindex, for hooks (policy-routing interfaces only).
    link_routes: BTreeMap<u32, Vec<String>>,
    /// The last hook run per link name ("" for manager.d).
    last_hooks: BTreeMap<String, crate::event::HookRun>,
    /// The owned table as last built (what `ruleset` prints).
    owned: Option<OwnedTable>,
    /// A stale owned table from an earlier instance was looked for.
    owned_checked: bool,
    foreign: ForeignState,
    /// `READY=1` went out (after the first complete reconcile).
    ready_sent: bool,
    metrics: crate::metrics::Metrics,
    /// When the current turn's events arrived (the loop woke for them).
    turn_started: Instant,
    pub reloads: u64,
}

/// What netmgrd repaired after other processes' commits.
#[derive(Default)]
struct ForeignState {
    repaired: u64,
    lost: u64,
    last: Option<(RepairReport, Instant)>,
}

/// What one turn's foreign commits made dirty.
#[derive(Default)]
struct Dirty {
    sets: BTreeSet<SetId>,
    rebuild_owned: bool,
}

impl<K: Kernel> Daemon<K> {
    /// Reads every managed set; the first reconcile waits for the first rtnetlink dump.
    pub fn new(setup: Setup, source: ConfigSource, kernel: K) -> Daemon<K> {
        let mut d = Daemon {
            setup,
            source,
            kernel,
            observed: Observed::default(),
            applied: Applied::new(),
            health: BTreeMap::new(),
            started: Instant::now(),
            last_error: None,
            engine: None,
            cgroup_follow: None,
            link_states: BTreeMap::new(),
            manager_state: None,
            last_hooks: BTreeMap::new(),
            policy: None,
            policy_links: None,
            policy_pending: false,
            link_routes: BTreeMap::new(),
            net_actions: Vec::new(),
            net_problems: Vec::new(),
            net_refused: BTreeMap::new(),
            ns_applied: BTreeMap::new(),
            owned: None,
            owned_checked: false,
            foreign: ForeignState::default(),
            ready_sent: false,
            metrics: crate::metrics::Metrics::default(),
            turn_started: Instant::now(),
            reloads: 0,
        };
        let _ = d.sync_owned_table(true);
        d.enable_forwarding();
        d.refresh_all_sets();
        d
    }

    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// `nat.enable_forwarding`: IPv4 and IPv6 forwarding on (never turned off by netmgrd).
    fn enable_forwarding(&mut self) {
        if !self.setup.config.nat.as_ref().is_some_and(|n| n.enable_forwarding) {
            return;
        }
        for knob in FORWARDING_KNOBS {
            match self.kernel.sysctl_on(knob) {
                Ok(true) => log::info!("enabled forwarding: {knob}"),
                Ok(false) => {}
                Err(e) => log::error!("cannot enable forwarding ({knob}): {e}"),
            }
        }
    }

    /// Brings the owned table in line with the config: builds it (atomically replacing what
    /// was there, with its sets already holding their current elements), or removes the one a
    /// previous config or instance left. `force` rebuilds even when nothing changed (the
    /// table vanished). On error the previous table stays in force (the batch is atomic).
    fn sync_owned_table(&mut self, force: bool) -> Result<(), String> {
        let spec = self.setup.owned.as_ref().map(|o| o.table.clone());
        if !force && spec == self.owned && (spec.is_some() || self.owned_checked) {
            return Ok(());
        }
        self.owned_checked = true;
        let stale = self
            .owned
            .as_ref()
            .map(|o| o.table.clone())
            .unwrap_or_else(|| self.setup.config.nftables.owned_table.clone());
        if spec.as_ref().map(|s| &s.table) != Some(&stale) && self.kernel.table_exists(&stale).unwrap_or(true)
        {
            if let Err(e) = self.kernel.delete_table(&stale) {
                log::warn!("cannot remove table {stale}: {e}");
            }
        }
        self.applied.retain(|s, _| s.table != stale);
        let Some(spec) = spec else {
            self.owned = None;
            return Ok(());
        };
        // Never replace a table netmgrd did not build (it carries netmgrd's mark).
        let built_here = self.owned.as_ref().is_some_and(|o| o.table == spec.table);
        if (force || !built_here) && self.kernel.table_is_ours(&spec.table).ok().flatten() == Some(false) {
            let msg = format!(
                "table {} exists and was not created by netmgrd (no comment \"{}\"); refusing to replace it: \
                 delete it or choose another nftables.owned_table",
                spec.table,
                crate::ruleset::OWNED_TABLE_COMMENT
            );
            log::error!("{msg}");
            for set in &spec.sets {
                self.set_health(set, Health::Error(msg.clone()));
            }
            self.last_error = Some(msg.clone());
            return Err(msg);
        }
        let desired = self.desired();
        let elements: Desired =
            spec.sets.iter().map(|s| (s.clone(), desired.get(s).cloned().unwrap_or_default())).collect();
        // After `force` (the table vanished) nothing of the previous build can be relied on.
        let previous = if force { None } else { self.owned.as_ref() };
        match self.kernel.build_owned_table(&spec, &elements, previous) {
            Ok(()) => {
                log::info!("built table {} ({} rules)", spec.table, spec.rule_count());
                self.applied.retain(|s, _| s.table != spec.table);
                self.applied.extend(elements);
                for set in &spec.sets {
                    self.set_health(set, Health::Ok);
                }
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
        match self.kernel.read_set(set) {
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
        // The owned table is ours: if someone removed it (`nft flush ruleset`), build it again.
        if let Some(t) = self.owned.as_ref().map(|o| o.table.clone()) {
            if !self.kernel.table_exists(&t).unwrap_or(true) {
                log::warn!("table {t} is gone; building it again");
                let _ = self.sync_owned_table(true);
            }
        }
        // Sets dropped from the config keep their applied entry so diff can empty them.
        let managed: Vec<SetId> = self.setup.managed.sets().cloned().collect();
        // An owned table that could not be built: its sets keep the build error as health.
        let unbuilt =
            self.owned.is_none().then(|| self.setup.owned.as_ref().map(|o| o.table.table.clone())).flatten();
        for set in &managed {
            if unbuilt.as_ref() != Some(&set.table) {
                self.refresh_set(set);
            }
        }
        self.health.retain(|s, _| managed.contains(s));
        self.clear_error_if_healthy();
    }

    /// Which managed objects the turn's foreign commits touched: a managed set whose
    /// elements, declaration or table changed; the owned table when anything in it changed
    /// (its rules are netmgrd's too). Rule and chain changes in the admin's tables touch
    /// nothing netmgrd owns (an fw4 reload flushes rules but keeps set elements).
    fn dirty(&self, commits: &[NftCommit]) -> Dirty {
        let owned = self.owned.as_ref().map(|o| &o.table);
        let mut dirty = Dirty::default();
        for change in commits.iter().flat_map(|c| &c.changes) {
            let Some(family) = Family::from_number(change.family) else { continue };
            let table = TableRef { family, name: change.table.clone() };
            let in_owned = owned == Some(&table);
            for set in self.setup.managed.sets().filter(|s| s.table == table) {
                let touched = match change.kind {
                    ObjectKind::Table => true,
                    ObjectKind::Set | ObjectKind::Elements => {
                        change.name.as_deref() == Some(set.name.as_str())
                    }
                    ObjectKind::Chain | ObjectKind::Rule => false,
                };
                if touched {
                    dirty.sets.insert(set.clone());
                }
            }
            if in_owned && !matches!(change.kind, ObjectKind::Elements) {
                dirty.rebuild_owned = true;
            }
        }
        dirty
    }

    /// Restores what foreign commits changed, in this turn: the owned table rebuilt when it
    /// was touched, every dirty set re-read so the reconcile that follows diffs against the
    /// kernel's truth (missing elements back, foreign ones out, a set that appeared filled).
    fn repair(&mut self, commits: Vec<NftCommit>, lost: Option<String>) {
        if let Some(why) = lost {
            log::warn!("{why}: re-reading every managed set");
            self.foreign.lost += 1;
            if self.owned.is_some() {
                let _ = self.sync_owned_table(true);
            }
            self.refresh_all_sets();
            return;
        }
        if commits.is_empty() {
            return;
        }
        let dirty = self.dirty(&commits);
        if dirty.sets.is_empty() && !dirty.rebuild_owned {
            return;
        }
        let rebuilt = dirty.rebuild_owned && self.owned.is_some() && self.sync_owned_table(true).is_ok();
        let owned = self.owned.as_ref().map(|o| o.table.clone());
        for set in &dirty.sets {
            if !(rebuilt && owned.as_ref() == Some(&set.table)) {
                self.refresh_set(set);
            }
        }
        let desired = self.desired();
        let (mut added, mut removed) = (0, 0);
        let mut restored = Vec::new();
        for c in diff::diff(&desired, &self.applied).iter().filter(|c| dirty.sets.contains(&c.set)) {
            if !self.observed.docker_ready && self.setup.managed.from_containers(&c.set) {
                continue;
            }
            added += c.add.len();
            removed += c.del.len();
            restored.push(format!("{} +{} -{}", c.set, c.add.len(), c.del.len()));
        }
        if added + removed == 0 && !rebuilt {
            return; // touched, but already right (an fw4 reload that kept the elements)
        }
        let last = commits.last().map(|c| (c.pid, c.process.clone())).unwrap_or_default();
        if rebuilt {
            restored.push(format!("table {} rebuilt", owned.map(|t| t.to_string()).unwrap_or_default()));
        }
        log::info!("repairing a foreign change by pid {} ({}): {}", last.0, last.1, restored.join(", "));
        self.foreign.repaired += 1;
        let report =
            RepairReport { pid: last.0, process: last.1, age_s: 0, added, removed, rebuilt_table: rebuilt };
        self.foreign.last = Some((report, Instant::now()));
    }

    fn desired(&self) -> Desired {
        plan::plan(&self.setup, &self.observed)
    }

    /// The changes that take a managed set from what is applied to what is desired.
    fn changes(&self, desired: &Desired) -> Vec<SetChange> {
        let mut changes = diff::diff(desired, &self.applied);
        // Containers not known yet are not containers gone: leave sets filled from
        // containers alone until the first full sync.
        if !self.observed.docker_ready {
            changes.retain(|c| !self.setup.managed.from_containers(&c.set));
        }
        // Likewise cgroup sets until the first scan of the cgroup tree.
        if !self.observed.cgroups_ready {
            changes.retain(|c| !matches!(self.setup.managed.owner(&c.set), Some(Owner::Cgroup(_))));
        }
        changes
    }

    /// One reconcile: normally one batch. A refused batch is retried once after re-reading
    /// its sets (someone else changed them); a set the kernel still refuses (full, wrong
    /// type) is set aside with its reason in `status` and the other sets' changes are sent
    /// without it. The set is tried again when a commit touches it, or on resync/reload.
    fn reconcile(&mut self) {
        if !self.observed.net_ready {
            return;
        }
        let desired = self.desired();
        let changes = self.changes(&desired);
        if changes.is_empty() {
            return;
        }
        let Err(e) = self.kernel.apply(&changes) else {
            self.applied_ok(&desired, &changes);
            return self.clear_error_if_healthy();
        };
        log::warn!("nftables refused the update: {e}; re-reading the sets and retrying once");
        for set in changes.iter().map(|c| c.set.clone()).collect::<Vec<_>>() {
            if desired.contains_key(&set) {
                self.refresh_set(&set);
            } else if let Ok(elems) = self.kernel.read_set(&set) {
                self.applied.insert(set, elems);
            } else {
                self.applied.remove(&set);
            }
        }
        // Each refusal sets one set aside, so this ends.
        loop {
            let retry = self.changes(&desired);
            if retry.is_empty() {
                return;
            }
            let Err(e) = self.kernel.apply(&retry) else {
                self.applied_ok(&desired, &retry);
                return;
            };
            let culprit = match &e {
                NftError::Rejected { set: Some(name), .. } | NftError::Full { set: name, .. } => {
                    retry.iter().map(|c| &c.set).find(|s| s.to_string() == *name).cloned()
                }
                _ => None,
            };
            let msg = e.to_string();
            let Some(set) = culprit else {
                log::error!("nftables refused the update again: {msg}");
                self.last_error = Some(msg);
                return;
            };
            log::error!("{msg}; the other sets are updated without it");
            self.applied.remove(&set);
            self.set_health(&set, Health::Error(msg));
        }
    }

    /// `last_error` goes once nothing is wrong any more.
    fn clear_error_if_healthy(&mut self) {
        let built = self.setup.owned.is_none() || self.owned.is_some();
        if self.last_error.is_some() && built && self.health.values().all(|h| *h == Health::Ok) {
            log::info!("no error remains (last was: {})", self.last_error.as_deref().unwrap_or(""));
            self.last_error = None;
        }
    }

    fn applied_ok(&mut self, desired: &Desired, changes: &[SetChange]) {
        for c in changes {
            log::info!("{}: {}", c.set, describe(c));
        }
        let added = changes.iter().map(|c| c.add.len()).sum();
        let removed = changes.iter().map(|c| c.del.len()).sum();
        self.metrics.observe_commit(self.turn_started.elapsed(), added, removed);
        diff::record(&mut self.applied, desired, changes);
    }

    /// A reload between `RELOADING=1` and `READY=1`, whether it works or not (the old config
    /// stays in force on failure, and the service is ready either way).
    fn reload_notified(&mut self, out: &mut Vec<Outgoing>) -> Result<(), String> {
        out.push(Outgoing::Lifecycle(Lifecycle::Reloading));
        let result = self.reload(out);
        if self.ready_sent {
            out.push(Outgoing::Lifecycle(Lifecycle::Ready { status: self.short_status() }));
        }
        result
    }

    /// The `STATUS=` line for the service manager.
    fn short_status(&self) -> String {
        let (sets, elements, unhealthy) = self.counts();
        format!("{sets} managed set(s), {elements} element(s), {unhealthy} unhealthy")
    }

    fn reload(&mut self, out: &mut Vec<Outgoing>) -> Result<(), String> {
        let setup = self.source.load().map_err(|e| e.to_string())?;
        let previous = std::mem::replace(&mut self.setup, setup);
        if let Err(e) = self.sync_owned_table(false) {
            // The kernel refused the new table: keep running the old config whole.
            self.setup = previous;
            return Err(e);
        }
        let docker = self.source.docker_socket(&self.setup);
        if docker != self.source.docker_socket(&previous) {
            // A different Engine (or none): what was known of containers no longer holds.
            self.observed.containers.clear();
            self.observed.docker_ready = false;
            self.observed.networks = None;
            self.net_actions.clear();
            self.engine = None;
            out.push(Outgoing::DockerSocket(docker));
        }
        if self.setup.config.hooks != previous.config.hooks {
            out.push(Outgoing::Hooks(self.setup.config.hooks.clone()));
        }
        if self.setup.config.control != previous.config.control {
            log::warn!("control socket settings changed; they take effect at the next restart");
        }
        for w in &self.setup.config.warnings {
            log::warn!("{w}");
        }
        set_log_level(&self.setup, &self.source);
        self.enable_forwarding();
        self.reloads += 1;
        self.refresh_all_sets();
        out.push(Outgoing::Reloaded);
        // The network requests go out again (the source forgets its refusals on reload).
        self.net_actions.clear();
        log::info!("reloaded {}", self.source.path.display());
        Ok(())
    }

    /// `on_exit: flush` empties every managed set before stopping.
    fn stop(&mut self) {
        if self.setup.config.nftables.on_exit == OnExit::Flush {
            let owned = self.owned.as_ref().map(|o| o.table.clone());
            let changes: Vec<SetChange> = diff::flush_all(&self.applied)
                .into_iter()
                .filter(|c| owned.as_ref() != Some(&c.set.table))
                .collect();
            match self.kernel.apply(&changes) {
                Ok(()) => log::info!("flushed {} managed set(s)", changes.len()),
                Err(e) => log::error!("flush at exit failed: {e}"),
            }
            if let Some(t) = owned.filter(|t| self.kernel.table_is_ours(t).ok().flatten() == Some(true)) {
                match self.kernel.delete_table(&t) {
                    Ok(()) => log::info!("deleted table {t}"),
                    Err(e) => log::error!("cannot delete table {t}: {e}"),
                }
            }
        }
        log::info!("stopping");
    }

    fn answer(&mut self, request: Request) -> String {
        match request {
            Request::Ping => reply_ok(serde_json::Value::from("pong")),
            Request::Status => reply(&self.status()),
            Request::Sets => reply(&self.sets()),
            Request::Containers => reply(&self.containers()),
            Request::Ruleset => reply(&self.ruleset()),
            Request::Metrics => reply(&self.metrics_text()),
            Request::Cgroups => reply(&self.cgroups()),
            Request::Help => reply(
                &COMMANDS
                    .iter()
                    .map(|(c, d)| HelpEntry { command: c.to_string(), does: d.to_string() })
                    .collect::<Vec<_>>(),
            ),
            // Reload and resync ran before the reconcile (see `handle`); here only the reply.
            Request::Reload | Request::Resync => reply_ok(serde_json::Value::from("done")),
        }
    }

    fn set_summary(&self, set: &SetId) -> SetSummary {
        let (health, error) = self.health_of(set);
        SetSummary {
            set: set.to_string(),
            kind: kind_name(set.kind).to_string(),
            elements: self.applied.get(set).map(|e| e.len()).unwrap_or(0),
            health,
            error,
        }
    }

    fn health_of(&self, set: &SetId) -> (HealthState, Option<String>) {
        match self.health.get(set) {
            Some(Health::Ok) => (HealthState::Ok, None),
            Some(Health::Missing(m)) => (HealthState::Missing, Some(m.clone())),
            Some(Health::Error(m)) => (HealthState::Error, Some(m.clone())),
            None => (HealthState::Unknown, None),
        }
    }

    /// (managed sets, elements applied, unhealthy sets): the short summaries' numbers.
    fn counts(&self) -> (usize, usize, usize) {
        let elements = self.applied.values().map(|e| e.len()).sum();
        let unhealthy = self.health.values().filter(|h| **h != Health::Ok).count();
        (self.setup.managed.sets().count(), elements, unhealthy)
    }

    pub fn status(&self) -> Status {
        let (uid, cap_eff) = crate::sys::privilege::current();
        let config = &self.setup.config;
        let managed = &self.setup.managed;
        let docker = config.docker.as_ref().map(|_| DockerReport {
            engine: self.engine.clone().unwrap_or_default(),
            synced: self.observed.docker_ready,
            containers: self.observed.containers.len(),
            sets: managed
                .iter()
                .filter(|(o, _)| o.from_containers())
                .map(|(_, s)| self.set_summary(s))
                .collect(),
            network_problems: self.net_problems.iter().chain(self.net_refused.values()).cloned().collect(),
        });
        let zones = config
            .zone_names()
            .into_iter()
            .map(|zone| {
                let interfaces = config
                    .zone_interfaces(&zone)
                    .iter()
                    .map(|name| {
                        let link = self.observed.links_named(name).next();
                        InterfaceReport {
                            name: name.to_string(),
                            present: link.is_some(),
                            up: link.is_some_and(|l| l.up),
                            ifindex: link.map(|l| l.index),
                            addresses: link
                                .map(|l| {
                                    self.observed
                                        .addresses_of(l.index)
                                        .map(|a| a.prefix.to_string())
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }
                    })
                    .collect();
                let sets = managed.of_zone(&zone).map(|s| self.set_summary(s)).collect();
                (zone, ZoneReport { interfaces, sets })
            })
            .collect();
        let links = self
            .link_states
            .iter()
            .map(|(index, (name, state))| LinkReport {
                name: name.clone(),
                index: *index,
                state: state.name().to_string(),
                zone: self.zone_of(name),
                last_hook: self.last_hooks.get(name).cloned(),
            })
            .collect();
        Status {
            links,
            manager_state: self.manager_state.unwrap_or(LinkState::Off).name().to_string(),
            policy_routing: if self.setup.config.policy_routing.is_empty() {
                None
            } else {
                self.policy.clone()
            },
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uid,
            cap_eff,
            uptime_s: self.started.elapsed().as_secs(),
            config: self.source.path.display().to_string(),
            ready: self.observed.net_ready,
            zones,
            docker,
            cgroups: self.cgroup_follow.clone().map(|f| CgroupsReport {
                known: self.observed.cgroups.len(),
                ready: self.observed.cgroups_ready,
                follow: f,
            }),
            cgroup_sets: managed
                .iter()
                .filter(|(o, _)| matches!(o, Owner::Cgroup(_)))
                .map(|(_, s)| self.set_summary(s))
                .collect(),
            owned_sets: managed
                .iter()
                .filter(|(o, _)| matches!(o, Owner::Owned(_)))
                .map(|(_, s)| self.set_summary(s))
                .collect(),
            foreign_changes: ForeignReport {
                repaired: self.foreign.repaired,
                lost: self.foreign.lost,
                last: self
                    .foreign
                    .last
                    .as_ref()
                    .map(|(r, at)| RepairReport { age_s: at.elapsed().as_secs(), ..r.clone() }),
            },
            nft_batches: self.kernel.batches_sent(),
            reloads: self.reloads,
            last_error: self.last_error.clone(),
        }
    }

    /// The policy-routing interfaces that exist, with their routable addresses (global or
    /// site scope, DAD done) while the link is up.
    fn policy_links(&self) -> Vec<PolicyLink> {
        const IFA_F_TENTATIVE: u32 = 0x40;
        self.setup
            .config
            .policy_routing
            .iter()
            .filter_map(|e| {
                let link = self.observed.links.values().find(|l| l.name == e.interface)?;
                let addresses = if link.up {
                    self.observed
                        .addresses_of(link.index)
                        .filter(|a| a.scope < 253 && a.flags & IFA_F_TENTATIVE == 0)
                        .map(|a| a.prefix)
                        .collect()
                } else {
                    Vec::new()
                };
                Some(PolicyLink {
                    interface: e.interface.clone(),
                    index: link.index,
                    table: e.table.unwrap_or(crate::policy::TABLE_BASE + link.index),
                    priority: e.priority,
                    gateway: e.gateway.clone(),
                    addresses,
                })
            })
            .collect()
    }

    /// Docker networks and fixed container addresses: the requests wanted now go to the
    /// Docker source whenever they change.
    fn plan_docker_networks(&mut self, out: &mut Vec<Outgoing>) {
        let (Some(cfg), Some(networks)) = (&self.setup.config.docker, &self.observed.networks) else {
            return;
        };
        if !self.observed.docker_ready {
            return;
        }
        let containers: Vec<_> = self.observed.containers.values().collect();
        let owner = self.source.path.display().to_string();
        let (actions, problems) = crate::docker_networks::plan(cfg, &owner, networks, &containers);
        for p in problems.iter().filter(|p| !self.net_problems.contains(p)) {
            log::warn!("docker: {p}");
        }
        self.net_problems = problems;
        if actions != self.net_actions {
            self.net_actions = actions.clone();
            out.push(Outgoing::DockerNetActions(actions));
        }
    }

    /// Rules and routes inside containers' namespaces: applied when a container's setup is new
    /// or changed (a restart has a new pid, so a new namespace), removed from a container that
    /// still runs but needs none any more. Failures are reported and tried again at the next
    /// Docker change or reload.
    fn setup_container_namespaces(&mut self) {
        if !self.observed.docker_ready {
            return;
        }
        let want = crate::container_ns::plan(&self.setup.config, &self.observed);
        let dropped: Vec<(String, crate::container_ns::NsSetup)> = self
            .ns_applied
            .iter()
            .filter(|(id, _)| !want.contains_key(*id))
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        for (id, old) in dropped {
            self.ns_applied.remove(&id);
            let still = self.observed.containers.get(&id).is_some_and(|c| c.active && c.pid == old.pid);
            if still {
                if let Err(e) = self.kernel.setup_netns(old.pid, None, &[], &old.routes) {
                    log::warn!("docker: namespace of {}: {e}", old.container);
                }
            }
        }
        for (id, s) in want {
            let key = format!("namespace of {}", s.container);
            let old = self.ns_applied.get(&id);
            if old == Some(&s) {
                continue;
            }
            // Routes of the same namespace that are no longer wanted.
            let stale: Vec<_> = old
                .filter(|o| o.pid == s.pid)
                .map(|o| o.routes.iter().filter(|r| !s.routes.contains(r)).cloned().collect())
                .unwrap_or_default();
            match self.kernel.setup_netns(s.pid, s.table.as_ref(), &s.routes, &stale) {
                Ok(()) => {
                    log::info!(
                        "docker: {} (pid {}): {} rule(s), {} route(s) in its namespace",
                        s.container,
                        s.pid,
                        s.table.as_ref().map_or(0, |t| t.chains.first().map_or(0, |c| c.rules.len())),
                        s.routes.len()
                    );
                    self.net_refused.remove(&key);
                    self.ns_applied.insert(id, s);
                }
                Err(e) => {
                    log::warn!("docker: {key}: {e}");
                    let text = format!("{key}: {e}");
                    self.net_refused.insert(key, text);
                }
            }
        }
    }

    /// The zone an interface belongs to.
    fn zone_of(&self, name: &str) -> Option<String> {
        self.setup.config.interfaces.iter().find(|i| i.name == name).and_then(|i| i.nftables_zone.clone())
    }

    /// Recomputes every link's state; what changed since the last turn. A link is
    /// `configured` when routable and every set of its zone is healthy after this turn's
    /// reconcile.
    fn link_transitions(&mut self) -> Vec<Transition> {
        if !self.observed.net_ready {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut now = BTreeMap::new();
        for (index, link) in &self.observed.links {
            let zone = self.zone_of(&link.name);
            let sets_ok = zone.as_ref().is_none_or(|z| {
                self.setup.managed.of_zone(z).all(|s| matches!(self.health.get(s), None | Some(Health::Ok)))
            });
            // A policy-routing interface also needs its rules and routes in place.
            let policy_ok = !self.setup.config.policy_routing.iter().any(|e| e.interface == link.name)
                || (!self.policy_pending && self.policy.as_ref().is_some_and(|p| p.error.is_none()));
            let healthy = sets_ok && policy_ok;
            let state = link_state(link, self.observed.addresses_of(*index), healthy);
            let old = self.link_states.get(index).map(|(_, s)| *s);
            if old != Some(state) {
                let t = Transition {
                    link: Some(link.name.clone()),
                    index: *index,
                    state,
                    old_state: old,
                    zone,
                    addresses: self.observed.addresses_of(*index).map(|a| a.prefix.to_string()).collect(),
                    routes: self.link_routes.get(index).cloned().unwrap_or_default(),
                    routes_changed: false,
                };
                // Routable and configured in one turn: the link passes through routable first,
                // so routable.d runs too.
                if state == LinkState::Configured && old.is_none_or(|o| o < LinkState::Routable) {
                    out.push(Transition { state: LinkState::Routable, ..t.clone() });
                    out.push(Transition { old_state: Some(LinkState::Routable), ..t });
                } else {
                    out.push(t);
                }
            }
            now.insert(*index, (link.name.clone(), state));
        }
        for (index, (name, old)) in &self.link_states {
            if !now.contains_key(index) && *old != LinkState::Off {
                out.push(Transition {
                    link: Some(name.clone()),
                    index: *index,
                    state: LinkState::Off,
                    old_state: Some(*old),
                    zone: self.zone_of(name),
                    addresses: Vec::new(),
                    routes: Vec::new(),
                    routes_changed: false,
                });
            }
        }
        let manager =
            manager_state(self.observed.links.iter().filter_map(|(i, l)| now.get(i).map(|(_, s)| (l, *s))));
        if self.manager_state != Some(manager) {
            out.push(Transition {
                link: None,
                index: 0,
                state: manager,
                old_state: self.manager_state,
                zone: None,
                addresses: Vec::new(),
                routes: Vec::new(),
                routes_changed: false,
            });
            self.manager_state = Some(manager);
        }
        for t in &out {
            log::info!(
                "link {}: {} -> {}",
                t.link.as_deref().unwrap_or("(manager)"),
                t.old_state.map_or("unknown", |s| s.name()),
                t.state
            );
        }
        self.link_states = now;
        out
    }

    /// `ctl cgroups`: every cgroup a cgroup set names, and whether its level lets it in.
    pub fn cgroups(&self) -> Vec<crate::report::CgroupReport> {
        let mut out = Vec::new();
        for (owner, set) in self.setup.managed.iter() {
            let Owner::Cgroup(i) = owner else { continue };
            let Some(entry) = self.setup.config.cgroups.as_ref().and_then(|c| c.sets.get(*i)) else {
                continue;
            };
            for (path, id) in &self.observed.cgroups {
                if plan::cgroup_matches(entry, path) {
                    let in_set = plan::cgroup_at_level(entry, path);
                    out.push(crate::report::CgroupReport {
                        path: path.clone(),
                        id: *id,
                        set: set.to_string(),
                        in_set,
                    });
                }
            }
        }
        out
    }

    /// `ctl metrics`: Prometheus text.
    pub fn metrics_text(&self) -> String {
        let sets = self
            .setup
            .managed
            .sets()
            .map(|s| {
                let n = self.applied.get(s).map_or(0, |e| e.len());
                (s.to_string(), n, self.health.get(s) == Some(&Health::Ok))
            })
            .collect();
        crate::metrics::render(&crate::metrics::Snapshot {
            batches: self.kernel.batches_sent(),
            reloads: self.reloads,
            repairs: self.foreign.repaired,
            docker_reconnects: self.engine.as_ref().map_or(0, |e| e.reconnects),
            sets,
            metrics: &self.metrics,
        })
    }

    /// One line of state for `SIGUSR1`.
    pub fn summary(&self) -> String {
        let (sets, elements, unhealthy) = self.counts();
        format!(
            "state: {sets} managed set(s) ({unhealthy} unhealthy), {elements} element(s), {} link(s), {} container(s), {} nft batch(es), {} reload(s), {} foreign repair(s), last error: {}",
            self.observed.links.len(),
            self.observed.containers.len(),
            self.kernel.batches_sent(),
            self.reloads,
            self.foreign.repaired,
            self.last_error.as_deref().unwrap_or("none")
        )
    }

    /// The owned table as applied now: its nft text and the elements of its sets.
    pub fn ruleset(&self) -> String {
        let Some(t) = &self.owned else {
            return "# netmgrd owns no table with this config\n".to_string();
        };
        // The elements below are the applied ones; the spec's own (static) elements are
        // among them, so they are not printed twice.
        let mut text = OwnedTable { elements: Desired::new(), ..t.clone() }.render();
        for set in &t.sets {
            let elems: Vec<String> =
                self.applied.get(set).into_iter().flatten().map(|x| x.to_string()).collect();
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
    pub fn containers(&self) -> Vec<ContainerReport> {
        let desired = self.desired();
        let docker_sets: Vec<(&SetId, _)> = desired
            .iter()
            .filter(|(s, _)| matches!(self.setup.managed.owner(s), Some(Owner::Docker(_))))
            .collect();
        self.observed
            .containers
            .values()
            .map(|c| {
                let ports = c
                    .ports
                    .iter()
                    .map(|p| match p.host_ip {
                        Some(ip) => format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.proto),
                        None => format!("{}->{}/{}", p.host_port, p.container_port, p.proto),
                    })
                    .collect();
                let addrs: Vec<Elem> = c
                    .networks
                    .values()
                    .flat_map(|a| {
                        a.ipv4.map(std::net::IpAddr::V4).into_iter().chain(a.ipv6.map(std::net::IpAddr::V6))
                    })
                    .map(Elem::Addr)
                    .collect();
                ContainerReport {
                    name: c.name.clone(),
                    id: c.id.chars().take(12).collect(),
                    networks: c
                        .networks
                        .iter()
                        .map(|(n, a)| (n.clone(), NetReport { ipv4: a.ipv4, ipv6: a.ipv6 }))
                        .collect(),
                    ports,
                    sets: docker_sets
                        .iter()
                        .filter(|(_, elems)| addrs.iter().any(|a| elems.contains(a)))
                        .map(|(s, _)| s.to_string())
                        .collect(),
                }
            })
            .collect()
    }

    pub fn sets(&self) -> Vec<SetListing> {
        self.setup
            .managed
            .iter()
            .map(|(owner, s)| {
                let (health, error) = self.health_of(s);
                SetListing {
                    set: s.to_string(),
                    kind: kind_name(s.kind).to_string(),
                    owner: owner.label(),
                    zone: match owner {
                        Owner::Zone(z) => Some(z.clone()),
                        _ => None,
                    },
                    health,
                    error,
                    elements: self.applied.get(s).into_iter().flatten().map(|e| e.to_string()).collect(),
                }
            })
            .collect()
    }
}

fn reply(result: &impl Serialize) -> String {
    match serde_json::to_value(result) {
        Ok(v) => reply_ok(v),
        Err(e) => reply_err(&format!("cannot encode the reply: {e}")),
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

pub fn set_log_level(setup: &Setup, source: &ConfigSource) {
    log::set_max_level(source.log_level_override.unwrap_or(setup.config.log.level.to_filter()));
}

impl<K: Kernel> Handler for Daemon<K> {
    fn handle(&mut self, events: Vec<Event>) -> (Vec<Outgoing>, bool) {
        self.turn_started = Instant::now();
        let mut out = Vec::new();
        let mut requests = Vec::new();
        let mut stop = false;
        let mut commits = Vec::new();
        let mut lost = None;
        let mut route_changes = Vec::new();
        // Docker networks and container namespaces are planned only in turns that changed what
        // they depend on (containers, networks, a request's result, the config), not per event.
        let mut docker_changed = false;
        let reloads_before = self.reloads;
        for ev in events {
            match ev {
                Event::Signal(SignalKind::Stop) => stop = true,
                Event::Signal(SignalKind::Summary) => log::info!("{}", self.summary()),
                Event::Signal(SignalKind::Reload) => {
                    if let Err(e) = self.reload_notified(&mut out) {
                        log::error!("reload failed, keeping the running config: {e}");
                        self.last_error = Some(e);
                    }
                }
                Event::ChildExited { pid, status } => out.push(Outgoing::ChildExited { pid, status }),
                Event::CgroupFollow(state) => self.cgroup_follow = Some(state),
                Event::Policy(report) => {
                    self.policy = Some(report);
                    self.policy_pending = false;
                }
                Event::LinkRoutes { index, routes } => {
                    log::debug!("routes of link {index}: {routes:?}");
                    let before = self.link_routes.insert(index, routes.clone());
                    // routes.d runs on a change, not for the first view at start.
                    if let (Some(_), Some((name, state))) = (before, self.link_states.get(&index)) {
                        route_changes.push(Transition {
                            link: Some(name.clone()),
                            index,
                            state: *state,
                            old_state: Some(*state),
                            zone: self.zone_of(name),
                            addresses: self
                                .observed
                                .addresses_of(index)
                                .map(|a| a.prefix.to_string())
                                .collect(),
                            routes,
                            routes_changed: true,
                        });
                    }
                }
                Event::HookFinished { link, run } => {
                    self.last_hooks.insert(link.unwrap_or_default(), run);
                }
                Event::Control { client, request: Request::Reload } => match self.reload_notified(&mut out) {
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
                Event::NftCommit(c) => commits.push(c),
                Event::NftLost(why) => lost = Some(why),
                Event::Engine(status) => self.engine = Some(status),
                Event::DockerNetResult { action, error } => {
                    docker_changed = true;
                    match error {
                        Some(e) => {
                            self.net_refused.insert(action, e);
                        }
                        None => {
                            self.net_refused.remove(&action);
                        }
                    }
                }
                net => {
                    if self.observed.apply(&net) {
                        log::debug!("{net:?}");
                        docker_changed |= matches!(
                            net,
                            Event::DockerSnapshot(_)
                                | Event::ContainerUp(_)
                                | Event::ContainerGone(_)
                                | Event::DockerNetworks(_)
                        );
                    }
                }
            }
        }
        self.repair(commits, lost);
        self.reconcile();
        if self.observed.net_ready {
            let links = self.policy_links();
            if self.policy_links.as_ref() != Some(&links) {
                self.policy_pending = !links.is_empty();
                self.policy_links = Some(links.clone());
                out.push(Outgoing::PolicyLinks(links));
            }
        }
        if docker_changed || self.reloads != reloads_before {
            self.plan_docker_networks(&mut out);
            self.setup_container_namespaces();
        }
        let mut transitions = self.link_transitions();
        transitions.append(&mut route_changes);
        if !transitions.is_empty() {
            out.push(Outgoing::LinkStates(transitions));
        }
        if self.observed.net_ready && !self.ready_sent {
            self.ready_sent = true;
            out.push(Outgoing::Lifecycle(Lifecycle::Ready { status: self.short_status() }));
        }
        for (client, request) in requests {
            let line = self.answer(request);
            out.push(Outgoing::Reply { client, line });
        }
        if stop {
            out.push(Outgoing::Lifecycle(Lifecycle::Stopping));
            self.stop();
        }
        (out, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements::TableRef;
    use crate::event::{Address, Link};
    use crate::kernel::fake::FakeKernel;
    use crate::wire::docker::{Container, NetAddrs};

    fn set(table: &str, name: &str, kind: SetKind) -> SetId {
        SetId { table: TableRef::parse(table).unwrap(), name: name.into(), kind }
    }

    fn addr(index: u32, text: &str) -> Address {
        Address { index, prefix: text.parse().unwrap(), scope: 0, flags: 0 }
    }

    fn elems(list: &[&str]) -> std::collections::BTreeSet<Elem> {
        list.iter().map(|a| Elem::Addr(a.parse().unwrap())).collect()
    }

    /// A daemon on the fake kernel, with every admin set of the config declared.
    fn daemon(text: &str, prepare: impl FnOnce(&mut FakeKernel, &Setup)) -> Daemon<FakeKernel> {
        let dir = std::env::temp_dir().join(format!("netmgrd-daemon-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.join(format!("config-{n}.yaml"));
        std::fs::write(&path, text).unwrap();
        let setup = Setup::load(&path).unwrap();
        let mut kernel = FakeKernel::default();
        for (_, s) in crate::managed::admin_sets(&setup.config) {
            kernel.declare(&s);
        }
        prepare(&mut kernel, &setup);
        let source =
            ConfigSource { path, log_level_override: None, socket_override: None, docker_host: None };
        Daemon::new(setup, source, kernel)
    }

    fn snapshot(links: &[(u32, &str)], addrs: Vec<Address>) -> Event {
        Event::NetSnapshot {
            links: links
                .iter()
                .map(|(i, n)| Link { index: *i, name: n.to_string(), up: true, carrier: true })
                .collect(),
            addrs,
        }
    }

    const ZONES: &str = "interfaces:\n  - { name: eth0, zone: wan }\n  - { name: eth1, zone: docker }\n  - { name: eth2, zone: publish }\ndocker:\n  sets: [{ ipv4_set: web4 }]\n  publish: true\n";

    #[test]
    fn zones_named_docker_and_publish_are_filled_before_any_docker_sync() {
        let mut d = daemon(ZONES, |_, _| {});
        d.handle(vec![snapshot(
            &[(2, "eth0"), (3, "eth1"), (4, "eth2")],
            vec![addr(2, "203.0.113.1/24"), addr(3, "203.0.113.9/24"), addr(4, "2001:db8::4/64")],
        )]);
        let k = d.kernel();
        assert_eq!(
            k.elements(&set("inet filter", "wan_ips", SetKind::Ipv4Addr)),
            Some(&elems(&["203.0.113.1"]))
        );
        assert_eq!(
            k.elements(&set("inet filter", "docker_ips", SetKind::Ipv4Addr)),
            Some(&elems(&["203.0.113.9"])),
            "a zone called docker is a zone"
        );
        assert_eq!(
            k.elements(&set("inet filter", "publish_ipv6", SetKind::Ipv6Addr)),
            Some(&elems(&["2001:db8::4"]))
        );
    }

    #[test]
    fn container_sets_wait_for_the_first_docker_sync() {
        let web4 = set("inet filter", "web4", SetKind::Ipv4Addr);
        let mut d = daemon(ZONES, |k, _| {
            k.elements_mut(&set("inet filter", "web4", SetKind::Ipv4Addr))
                .unwrap()
                .extend(elems(&["198.18.0.7"]));
        });
        d.handle(vec![snapshot(&[(2, "eth0")], vec![])]);
        assert_eq!(d.kernel().elements(&web4), Some(&elems(&["198.18.0.7"])), "untouched before the sync");
        let c = Container {
            id: "c1".into(),
            name: "web".into(),
            labels: Default::default(),
            networks: [("bridge".to_string(), NetAddrs { ipv4: "198.18.0.2".parse().ok(), ipv6: None })]
                .into(),
            ports: vec![],
            active: true,
            pid: 0,
        };
        d.handle(vec![Event::DockerSnapshot(vec![c])]);
        assert_eq!(d.kernel().elements(&web4), Some(&elems(&["198.18.0.2"])), "stale element replaced");
    }

    #[test]
    fn container_namespaces_are_set_up_again_after_a_restart_and_not_twice() {
        let cfg = "docker:\n  networks: { b: { subnet: 198.18.104.0/24 } }\n  containers:\n    app1: { networks: { b: 198.18.104.3 }, routes: [{ to: 203.0.113.0/24, via: 198.18.104.1 }] }\nnat:\n  dnat:\n    - { in_container: lb, proto: tcp, port: 8080, to: \"container:app1:80\" }\n";
        let mut d = daemon(cfg, |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![])]);
        let c = |name: &str, pid: u32, ip: &str| Container {
            id: format!("id-{name}"),
            name: name.into(),
            labels: Default::default(),
            networks: [("b".to_string(), NetAddrs { ipv4: ip.parse().ok(), ipv6: None })].into(),
            ports: vec![],
            active: true,
            pid,
        };
        d.handle(vec![Event::DockerSnapshot(vec![
            c("lb", 100, "198.18.104.2"),
            c("app1", 200, "198.18.104.3"),
        ])]);
        let ns = &d.kernel().netns;
        assert_eq!(ns.keys().copied().collect::<Vec<_>>(), vec![100, 200]);
        assert!(ns[&100].0.as_ref().is_some_and(|t| t.render().contains("dnat ip to 198.18.104.3:80")));
        assert_eq!(ns[&200].1.len(), 1, "app1's route");
        // Nothing changed: nothing is applied again.
        d.kernel_mut().netns.clear();
        d.handle(vec![Event::ContainerUp(c("app1", 200, "198.18.104.3"))]);
        assert!(d.kernel().netns.is_empty());
        // lb restarted: a new pid, its namespace is set up again.
        d.handle(vec![Event::ContainerUp(c("lb", 101, "198.18.104.2"))]);
        assert_eq!(d.kernel().netns.keys().copied().collect::<Vec<_>>(), vec![101]);
    }

    #[test]
    fn a_stale_view_is_reread_and_retried_once() {
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }]\n", |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]);
        // Someone else adds the address the daemon is about to add: EEXIST, re-read, retry.
        d.kernel_mut().elements_mut(&wan).unwrap().insert(Elem::Addr("203.0.113.2".parse().unwrap()));
        d.handle(vec![
            Event::AddrAdded(addr(2, "203.0.113.2/24")),
            Event::AddrAdded(addr(2, "203.0.113.3/24")),
        ]);
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&["203.0.113.1", "203.0.113.2", "203.0.113.3"])));
        assert!(d.status().last_error.is_none());
        // A refusal that persists is reported, and the loop goes on.
        d.kernel_mut().fail_next_apply = Some(libc::ENOSPC);
        d.kernel_mut().delete_table_now(&wan.table);
        d.handle(vec![Event::AddrAdded(addr(2, "203.0.113.4/24"))]);
        let status = d.status();
        assert_eq!(status.zones["wan"].sets[0].health, HealthState::Missing, "{status:?}");
        assert!(status.last_error.is_some());
    }

    #[test]
    fn missing_set_is_reported_and_filled_after_resync() {
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }]\n", |k, _| k.tables.clear());
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]);
        let status = d.status();
        let summary = &status.zones["wan"].sets[0];
        assert_eq!(summary.health, HealthState::Missing);
        assert!(summary
            .error
            .as_deref()
            .is_some_and(|e| e.contains("declare it: `set wan_ips { type ipv4_addr; }`")));
        d.kernel_mut().declare(&wan);
        d.kernel_mut().declare(&set("inet filter", "wan_ipv6", SetKind::Ipv6Addr));
        let (out, _) = d.handle(vec![Event::Control { client: 1, request: Request::Resync }]);
        assert!(out.contains(&Outgoing::NetResync));
        assert!(!out.iter().any(|o| matches!(o, Outgoing::Lifecycle(Lifecycle::Ready { .. }))), "ready once");
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&["203.0.113.1"])));
        assert_eq!(d.status().zones["wan"].sets[0].health, HealthState::Ok);
    }

    #[test]
    fn owned_table_is_built_with_its_static_elements_and_printed_once() {
        let text = "interfaces: [{ name: eth0, zone: wan }]\nnat:\n  enable_forwarding: true\n  dnat:\n    - { in_interface: eth0, proto: tcp, port: 8080, to: \"192.0.2.10:80\" }\n";
        let mut d = daemon(text, |_, _| {});
        let owned = TableRef::parse("inet netmgrd").unwrap();
        assert!(d.kernel().owned.contains_key(&owned));
        let dnat4 = set("inet netmgrd", "dnat4", SetKind::Forward4);
        assert_eq!(d.kernel().elements(&dnat4).map(|e| e.len()), Some(1));
        assert_eq!(d.kernel().sysctls.len(), 2, "forwarding turned on through the kernel trait");
        d.handle(vec![snapshot(&[(2, "eth0")], vec![])]);
        let ruleset = d.ruleset();
        assert_eq!(ruleset.matches("\"eth0\" . tcp . 8080 : 192.0.2.10 . 80").count(), 1, "{ruleset}");
        // The table vanishes (`nft flush ruleset`): resync builds it again.
        d.kernel_mut().delete_table_now(&owned);
        d.handle(vec![Event::Control { client: 1, request: Request::Resync }]);
        assert_eq!(d.kernel().elements(&dnat4).map(|e| e.len()), Some(1));
    }

    #[test]
    fn zone_dropped_on_reload_is_emptied() {
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }, { name: eth1, zone: lan }]\n", |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]);
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&["203.0.113.1"])));
        std::fs::write(&d.source.path, "interfaces: [{ name: eth1, zone: lan }]\n").unwrap();
        d.handle(vec![Event::Signal(SignalKind::Reload)]);
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&[])));
        assert_eq!(d.reloads, 1);
        // A broken config keeps the running one and names the place.
        std::fs::write(&d.source.path, "interfaces: [{ name: eth1, zone: lan }\n").unwrap();
        d.handle(vec![Event::Signal(SignalKind::Reload)]);
        assert_eq!(d.reloads, 1);
        let err = d.status().last_error.unwrap_or_default();
        assert!(err.starts_with(&format!("{}:", d.source.path.display())), "{err}");
    }

    fn commit(pid: u32, changes: Vec<crate::event::NftChange>) -> Event {
        Event::NftCommit(NftCommit { pid, process: "nft".into(), changes })
    }

    fn change(kind: ObjectKind, table: &str, name: Option<&str>) -> crate::event::NftChange {
        crate::event::NftChange {
            kind,
            op: crate::wire::nft_monitor::Op::Delete,
            family: 1,
            table: table.into(),
            name: name.map(str::to_string),
            count: 1,
        }
    }

    #[test]
    fn foreign_element_changes_are_repaired_in_the_same_turn() {
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }]\n", |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24"), addr(2, "203.0.113.2/24")])]);
        let e = d.kernel_mut().elements_mut(&wan).unwrap();
        e.remove(&Elem::Addr("203.0.113.1".parse().unwrap()));
        e.insert(Elem::Addr("198.51.100.9".parse().unwrap()));
        let batches = d.kernel().batches;
        d.handle(vec![commit(4242, vec![change(ObjectKind::Elements, "filter", Some("wan_ips"))])]);
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&["203.0.113.1", "203.0.113.2"])));
        assert_eq!(d.kernel().batches, batches + 1, "one batch restores it");
        let f = d.status().foreign_changes;
        assert_eq!(f.repaired, 1);
        let last = f.last.unwrap();
        assert_eq!((last.pid, last.added, last.removed, last.rebuilt_table), (4242, 1, 1, false));
    }

    #[test]
    fn rule_changes_and_unrelated_tables_cause_no_work() {
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }]\n", |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]);
        let batches = d.kernel().batches;
        d.handle(vec![commit(
            7,
            vec![
                change(ObjectKind::Rule, "filter", Some("input")),
                change(ObjectKind::Chain, "filter", Some("input")),
                change(ObjectKind::Table, "other", None),
                change(ObjectKind::Elements, "filter", Some("not_ours")),
            ],
        )]);
        // A touched set whose elements are still right: re-read, nothing sent.
        d.handle(vec![commit(7, vec![change(ObjectKind::Set, "filter", Some("wan_ips"))])]);
        assert_eq!(d.kernel().batches, batches);
        assert_eq!(d.status().foreign_changes.repaired, 0);
    }

    #[test]
    fn a_deleted_table_comes_back_and_the_owned_table_is_rebuilt() {
        let text = "interfaces: [{ name: eth0, zone: wan }]\nnat:\n  dnat:\n    - { in_interface: eth0, proto: tcp, port: 8080, to: \"192.0.2.10:80\" }\n";
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let dnat4 = set("inet netmgrd", "dnat4", SetKind::Forward4);
        let mut d = daemon(text, |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]);
        // `nft flush ruleset`: both tables go; the owned one is rebuilt at once.
        d.kernel_mut().tables.clear();
        d.handle(vec![commit(
            9,
            vec![change(ObjectKind::Table, "filter", None), change(ObjectKind::Table, "netmgrd", None)],
        )]);
        assert_eq!(d.kernel().elements(&dnat4).map(|e| e.len()), Some(1));
        assert_eq!(d.status().zones["wan"].sets[0].health, HealthState::Missing);
        assert!(d.status().foreign_changes.last.unwrap().rebuilt_table);
        // The admin's ruleset is loaded again: the set is filled in that turn.
        d.kernel_mut().declare(&wan);
        d.handle(vec![commit(
            9,
            vec![crate::event::NftChange {
                op: crate::wire::nft_monitor::Op::New,
                ..change(ObjectKind::Table, "filter", None)
            }],
        )]);
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&["203.0.113.1"])));
        assert_eq!(d.status().zones["wan"].sets[0].health, HealthState::Ok);
    }

    #[test]
    fn lost_notifications_reread_everything() {
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }]\n", |_, _| {});
        d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]);
        d.kernel_mut().elements_mut(&wan).unwrap().clear();
        d.handle(vec![Event::NftLost("ENOBUFS".into())]);
        assert_eq!(d.kernel().elements(&wan), Some(&elems(&["203.0.113.1"])));
        assert_eq!(d.status().foreign_changes.lost, 1);
    }

    #[test]
    fn a_table_netmgrd_did_not_create_is_never_replaced_or_deleted() {
        let text =
            "nat:\n  dnat:\n    - { in_interface: eth0, proto: tcp, port: 8080, to: \"192.0.2.10:80\" }\n";
        let admins = set("inet netmgrd", "admins_own", SetKind::Ipv4Addr);
        let mut d = daemon(text, |k, _| {
            k.declare(&set("inet netmgrd", "admins_own", SetKind::Ipv4Addr));
            k.elements_mut(&set("inet netmgrd", "admins_own", SetKind::Ipv4Addr))
                .unwrap()
                .insert(Elem::Addr("192.0.2.1".parse().unwrap()));
        });
        assert_eq!(d.kernel().elements(&admins).map(|e| e.len()), Some(1), "the admin's table is untouched");
        assert!(d.kernel().owned.is_empty());
        let err = d.status().last_error.unwrap_or_default();
        assert!(err.contains("was not created by netmgrd"), "{err}");
        d.handle(vec![Event::Signal(SignalKind::Stop)]);
        assert_eq!(d.kernel().elements(&admins).map(|e| e.len()), Some(1));
    }

    #[test]
    fn a_full_set_is_named_with_its_size_and_the_other_sets_still_update() {
        let wan = set("inet filter", "wan_ips", SetKind::Ipv4Addr);
        let lan = set("inet filter", "lan_ips", SetKind::Ipv4Addr);
        let text = "interfaces: [{ name: eth0, zone: wan }, { name: eth1, zone: lan }]\n";
        let mut d = daemon(text, |k, _| {
            k.sizes.insert(set("inet filter", "wan_ips", SetKind::Ipv4Addr), 3);
        });
        let four: Vec<Address> = (1..=4).map(|i| addr(2, &format!("203.0.113.{i}/24"))).collect();
        let mut addrs = four.clone();
        addrs.push(addr(3, "192.0.2.1/24"));
        d.handle(vec![snapshot(&[(2, "eth0"), (3, "eth1")], addrs)]);
        assert_eq!(d.kernel().elements(&lan), Some(&elems(&["192.0.2.1"])), "the other set is updated");
        let status = d.status();
        let err = status.zones["wan"].sets[0].error.clone().unwrap_or_default();
        assert_eq!(err, "set inet filter wan_ips is full (size 3)");
        assert_eq!(status.last_error.as_deref(), Some(err.as_str()));
        // Later events still reach the healthy sets.
        d.handle(vec![Event::AddrAdded(addr(3, "192.0.2.2/24"))]);
        assert_eq!(d.kernel().elements(&lan), Some(&elems(&["192.0.2.1", "192.0.2.2"])));
        // The admin declares the set larger: the commit touches it, it is filled, the error goes.
        d.kernel_mut().sizes.clear();
        d.handle(vec![commit(5, vec![change(ObjectKind::Set, "filter", Some("wan_ips"))])]);
        assert_eq!(d.kernel().elements(&wan).map(|e| e.len()), Some(4));
        assert_eq!(d.status().last_error, None);
    }

    #[test]
    fn lifecycle_ready_once_after_the_first_reconcile_and_around_reloads() {
        let mut d = daemon("interfaces: [{ name: eth0, zone: wan }]\n", |_, _| {});
        let steps = |out: Vec<Outgoing>| -> Vec<Lifecycle> {
            out.into_iter()
                .filter_map(|o| if let Outgoing::Lifecycle(l) = o { Some(l) } else { None })
                .collect()
        };
        assert!(
            steps(d.handle(vec![Event::Signal(SignalKind::Summary)]).0).is_empty(),
            "not before the dump"
        );
        let first = steps(d.handle(vec![snapshot(&[(2, "eth0")], vec![addr(2, "203.0.113.1/24")])]).0);
        assert_eq!(
            first,
            vec![Lifecycle::Ready { status: "2 managed set(s), 1 element(s), 0 unhealthy".into() }]
        );
        let reload = steps(d.handle(vec![Event::Signal(SignalKind::Reload)]).0);
        assert_eq!(reload.len(), 2);
        assert_eq!(reload[0], Lifecycle::Reloading);
        assert!(matches!(reload[1], Lifecycle::Ready { .. }));
        assert_eq!(steps(d.handle(vec![Event::Signal(SignalKind::Stop)]).0), vec![Lifecycle::Stopping]);
    }
}
