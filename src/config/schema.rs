//! The config file's shape as serde types, with value checks that run while parsing
//! (nft names, prefixes, ports, NAT targets, file modes).

use crate::elements::{check_nft_name, Family, TableRef};
use crate::inet::L4Proto;
use crate::prefix::IpPrefix;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::DEFAULT_SOCKET_PATH;

impl<'de> Deserialize<'de> for TableRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TableRef::parse(&s).map_err(de::Error::custom)
    }
}

fn nft_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_nft_name(&s).map_err(de::Error::custom)?;
    Ok(s)
}

fn opt_nft_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    nft_name(d).map(Some)
}

fn prefix<'de, D: Deserializer<'de>>(d: D) -> Result<IpPrefix, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<IpPrefix>().map_err(de::Error::custom)
}

fn opt_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpPrefix>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<IpPrefix>().map(Some).map_err(de::Error::custom)
}

fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    // "0660" as a string, or 660/0o660 written as a YAML integer: both read as octal digits.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u32),
    }
    let digits = match Raw::deserialize(d)? {
        Raw::Text(s) => s,
        Raw::Number(n) => n.to_string(),
    };
    let trimmed = digits.trim_start_matches("0o");
    u32::from_str_radix(trimmed, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| de::Error::custom(format!("`{digits}` is not a file mode like \"0660\"")))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    Auto,
    Stderr,
    Syslog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "off" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub target: LogTarget,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: LogLevel::Info, target: LogTarget::Auto }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub socket: PathBuf,
    #[serde(deserialize_with = "file_mode")]
    pub mode: u32,
    /// Group allowed to use the socket besides root; `None` means root only.
    pub group: Option<String>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig { socket: PathBuf::from(DEFAULT_SOCKET_PATH), mode: 0o660, group: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExit {
    /// Leave managed set elements in place (a restart finds them and reconciles).
    Keep,
    /// Remove every element netmgrd manages.
    Flush,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NftablesConfig {
    pub table: TableRef,
    pub owned_table: TableRef,
    pub on_exit: OnExit,
}

impl Default for NftablesConfig {
    fn default() -> Self {
        NftablesConfig {
            table: TableRef { family: Family::Inet, name: "filter".into() },
            owned_table: TableRef { family: Family::Inet, name: "netmgrd".into() },
            on_exit: OnExit::Keep,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    /// Informational (netmgrd never runs a DHCP client): addresses are read from the kernel.
    #[serde(default)]
    pub dhcp: Option<bool>,
    /// Informational: the address netmgrd expects; the kernel's addresses are what count.
    #[serde(default, deserialize_with = "opt_prefix")]
    pub address: Option<IpPrefix>,
    #[serde(default, alias = "zone", deserialize_with = "opt_nft_name")]
    pub nftables_zone: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    #[serde(default)]
    pub table: Option<TableRef>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub ipv4_set: Option<String>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub ipv6_set: Option<String>,
    /// Interval set of the zone's IPv4 prefixes (`flags interval`).
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub networks4_set: Option<String>,
    /// Interval set of the zone's IPv6 prefixes (`flags interval`).
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub networks6_set: Option<String>,
}

/// Labels to match: `{key: value}` (exact) or `["key=value", "key"]` (a bare key: present).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelMatch(pub Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for LabelMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Map(BTreeMap<String, String>),
            List(Vec<String>),
        }
        Ok(LabelMatch(match Raw::deserialize(d)? {
            Raw::Map(m) => m.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            Raw::List(l) => l
                .into_iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (item, None),
                })
                .collect(),
        }))
    }
}

/// Which containers a docker set takes; every given criterion must hold.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerMatch {
    #[serde(default)]
    pub labels: LabelMatch,
    /// Globs (`*`, `?`) on the container name.
    #[serde(default)]
    pub names: Vec<String>,
    /// The container must be on one of these networks; only their addresses are used.
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub compose_project: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerSetConfig {
    #[serde(default)]
    pub table: Option<TableRef>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub ipv4_set: Option<String>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub ipv6_set: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: ContainerMatch,
}

/// How cgroups are followed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupWatch {
    /// `journal` when systemd is PID 1 (`/run/systemd/system` exists), else `inotify`.
    #[default]
    Auto,
    /// Unit start/stop messages from a `journalctl --follow` child trigger a look at the
    /// unit's cgroups.
    Journal,
    /// inotify on every directory of the cgroup tree.
    Inotify,
}

/// One set of cgroup ids (`typeof socket cgroupv2 level N`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CgroupSetConfig {
    #[serde(deserialize_with = "nft_name")]
    pub set: String,
    #[serde(default)]
    pub table: Option<TableRef>,
    /// Globs on cgroup directory names, anywhere in the tree (`postfix.service`, `app-*.scope`).
    #[serde(default)]
    pub units: Vec<String>,
    /// Globs on paths relative to the root (`system.slice/*.service`).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The set's `level N`: only cgroups at that depth can match; others are reported.
    #[serde(default)]
    pub level: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CgroupsConfig {
    /// The cgroup2 mount; default: found in /proc/self/mounts.
    #[serde(default)]
    pub root: Option<PathBuf>,
    #[serde(default)]
    pub watch: CgroupWatch,
    #[serde(default)]
    pub sets: Vec<CgroupSetConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Engine socket; default `$DOCKER_HOST` (unix://) or /var/run/docker.sock.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub sets: Vec<DockerSetConfig>,
    /// Published ports into the owned table's DNAT map.
    #[serde(default)]
    pub publish: bool,
    /// Networks netmgrd makes sure exist (bridge driver, this subnet and gateway).
    #[serde(default)]
    pub networks: BTreeMap<String, DockerNetworkConfig>,
    /// Containers netmgrd connects to networks with a fixed address, by container name.
    #[serde(default)]
    pub containers: BTreeMap<String, DockerContainerConfig>,
}

/// A Docker network netmgrd creates when missing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerNetworkConfig {
    #[serde(deserialize_with = "prefix")]
    pub subnet: IpPrefix,
    #[serde(default)]
    pub gateway: Option<std::net::IpAddr>,
    #[serde(default, deserialize_with = "opt_prefix")]
    pub ipv6_subnet: Option<IpPrefix>,
}

/// A container's fixed addresses, per network name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerContainerConfig {
    #[serde(default)]
    pub networks: BTreeMap<String, std::net::IpAddr>,
    /// Routes netmgrd adds inside the container's network namespace.
    #[serde(default)]
    pub routes: Vec<ContainerRoute>,
}

/// `{ to: 203.0.113.0/24, via: 198.18.104.1 }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRoute {
    #[serde(deserialize_with = "prefix")]
    pub to: IpPrefix,
    pub via: std::net::IpAddr,
}

pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

impl DockerConfig {
    /// The socket to use: the config's, else `$DOCKER_HOST` when it is `unix://...`, else
    /// the default.
    pub fn socket_path(&self, docker_host: Option<String>) -> PathBuf {
        if let Some(s) = &self.socket {
            return s.clone();
        }
        match docker_host.as_deref().and_then(|h| h.strip_prefix("unix://")) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_DOCKER_SOCKET),
        }
    }
}

/// `tcp`, `udp` or `both` (default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtoSel {
    Tcp,
    Udp,
    #[default]
    Both,
}

impl ProtoSel {
    pub fn protocols(self) -> &'static [L4Proto] {
        match self {
            ProtoSel::Tcp => &[L4Proto::Tcp],
            ProtoSel::Udp => &[L4Proto::Udp],
            ProtoSel::Both => &[L4Proto::Tcp, L4Proto::Udp],
        }
    }
}

/// Port items one entry may list (ranges cover any number of ports).
pub const MAX_PORT_ITEMS: usize = 1024;

/// Ports: `80`, `"8000-8100"`, or a list of either; kept as inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSpec(pub Vec<(u16, u16)>);

fn parse_port_item(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
    match s.split_once('-') {
        Some((a, b)) => match (port(a), port(b)) {
            (Some(a), Some(b)) if a <= b => Ok((a, b)),
            _ => Err(format!("`{s}` is not a port range like \"8000-8100\"")),
        },
        None => port(s).map(|p| (p, p)).ok_or_else(|| format!("`{s}` is not a port (1-65535)")),
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Item {
            Number(u64),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(Item),
            List(Vec<Item>),
        }
        let items = match Raw::deserialize(d)? {
            Raw::One(i) => vec![i],
            Raw::List(l) => l,
        };
        if items.len() > MAX_PORT_ITEMS {
            return Err(de::Error::custom(format!(
                "{} ports listed; at most {MAX_PORT_ITEMS} (write a range such as \"8000-8100\")",
                items.len()
            )));
        }
        let mut out = Vec::new();
        for i in items {
            let text = match i {
                Item::Number(n) => n.to_string(),
                Item::Text(t) => t,
            };
            out.push(parse_port_item(&text).map_err(de::Error::custom)?);
        }
        if out.is_empty() {
            return Err(de::Error::custom("an empty port list"));
        }
        Ok(PortSpec(out))
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6ADDR]:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatTarget {
    pub addr: std::net::IpAddr,
    pub port: Option<u16>,
}

impl<'de> Deserialize<'de> for NatTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || de::Error::custom(format!("`{s}` is not ADDR, ADDR:PORT or [IPV6]:PORT"));
        if let Ok(addr) = s.parse() {
            return Ok(NatTarget { addr, port: None });
        }
        let (a, p) = match s.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").ok_or_else(bad)?,
            None => s.rsplit_once(':').ok_or_else(bad)?,
        };
        let addr = a.parse().map_err(|_| bad())?;
        let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        Ok(NatTarget { addr, port: Some(port) })
    }
}

/// Where a DNAT goes: an address, or a container by name (`container:NAME[:PORT]`), whose
/// current IPv4 address netmgrd keeps in the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnatTarget {
    Addr(NatTarget),
    Container { name: String, port: Option<u16> },
}

impl<'de> Deserialize<'de> for DnatTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let Some(rest) = s.strip_prefix("container:") else {
            let t = serde_yaml::from_value::<NatTarget>(serde_yaml::Value::String(s))
                .map_err(de::Error::custom)?;
            return Ok(DnatTarget::Addr(t));
        };
        let (name, port) = match rest.rsplit_once(':') {
            Some((n, p)) => {
                let port = p.parse::<u16>().ok().filter(|p| *p > 0);
                let port = port.ok_or_else(|| de::Error::custom(format!("`{s}`: `{p}` is not a port")))?;
                (n, Some(port))
            }
            None => (rest, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(de::Error::custom(format!("`{s}`: `{name}` is not a container name")));
        }
        Ok(DnatTarget::Container { name: name.to_string(), port })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Accept,
    Drop,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnatRule {
    #[serde(default)]
    pub in_interface: Option<String>,
    /// DNAT inside this container's network namespace (instead of the host's).
    #[serde(default)]
    pub in_container: Option<String>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub in_zone: Option<String>,
    #[serde(default)]
    pub proto: ProtoSel,
    pub port: PortSpec,
    pub to: DnatTarget,
    #[serde(default)]
    pub hairpin: bool,
    #[serde(default)]
    pub comment: Option<String>,
    /// Line of this entry in the file, for errors the kernel reports later.
    #[serde(skip)]
    pub line: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnatRule {
    #[serde(default)]
    pub out_interface: Option<String>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub out_zone: Option<String>,
    #[serde(default, deserialize_with = "opt_prefix")]
    pub source: Option<IpPrefix>,
    pub to: NatTarget,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MasqueradeRule {
    #[serde(default)]
    pub out_interface: Option<String>,
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub out_zone: Option<String>,
    #[serde(default, deserialize_with = "opt_prefix")]
    pub source: Option<IpPrefix>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardRule {
    /// A zone, an interface, a CIDR, a managed set, or `container:<docker set>`.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub proto: Option<ProtoSel>,
    #[serde(default)]
    pub port: Option<PortSpec>,
    pub action: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatConfig {
    #[serde(default)]
    pub dnat: Vec<DnatRule>,
    #[serde(default)]
    pub snat: Vec<SnatRule>,
    #[serde(default)]
    pub masquerade: Vec<MasqueradeRule>,
    #[serde(default)]
    pub forward: Vec<ForwardRule>,
    #[serde(default)]
    pub forward_policy: Verdict,
    #[serde(default)]
    pub enable_forwarding: bool,
}

/// The file as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) log: LogConfig,
    /// Run as this user (name or uid) with `CAP_NET_ADMIN` only, once the sockets are open.
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) control: Option<ControlConfig>,
    #[serde(default)]
    pub(super) nftables: NftablesConfig,
    #[serde(default)]
    pub(super) interfaces: Vec<InterfaceConfig>,
    #[serde(default)]
    pub(super) zones: BTreeMap<String, ZoneConfig>,
    #[serde(default)]
    pub(super) docker: Option<DockerConfig>,
    #[serde(default)]
    pub(super) cgroups: Option<CgroupsConfig>,
    #[serde(default)]
    pub(super) nat: Option<NatConfig>,
    #[serde(default)]
    pub(super) hooks: Option<HooksConfig>,
    #[serde(default)]
    pub(super) policy_routing: Vec<PolicyRoutingConfig>,
    // rust-network-mgr's top-level keys.
    #[serde(default)]
    pub(super) socket_path: Option<PathBuf>,
    #[serde(default)]
    pub(super) nftables_rules_path: Option<String>,
    #[serde(default)]
    pub(super) http_bind_addr: Option<String>,
}

/// A duration written as `30s`, `500ms`, `2m` or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub std::time::Duration);

impl Seconds {
    pub fn parse(s: &str) -> Option<Seconds> {
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num.parse().ok()?;
        let d = match unit.trim() {
            "" | "s" => std::time::Duration::from_secs(n),
            "ms" => std::time::Duration::from_millis(n),
            "m" | "min" => std::time::Duration::from_secs(n.checked_mul(60)?),
            _ => return None,
        };
        Some(Seconds(d))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Seconds(std::time::Duration::from_secs(n))),
            Raw::S(s) => Seconds::parse(&s)
                .ok_or_else(|| de::Error::custom(format!("`{s}` is not a duration (30s, 500ms, 2m)"))),
        }
    }
}

fn default_hooks_dir() -> PathBuf {
    PathBuf::from("/etc/netmgrd/hooks")
}

fn default_hook_timeout() -> Seconds {
    Seconds(std::time::Duration::from_secs(30))
}

fn default_max_parallel() -> usize {
    4
}

fn default_true() -> bool {
    true
}

/// Scripts run when links change state (`DIR/<state>.d/`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    #[serde(default = "default_hooks_dir")]
    pub dir: PathBuf,
    /// A hook past this gets SIGTERM, and SIGKILL 5 s later.
    #[serde(default = "default_hook_timeout")]
    pub timeout: Seconds,
    /// Hooks running at once over all links (one at a time per link).
    #[serde(default = "default_max_parallel")]
    pub max_parallel: usize,
    /// Pass the link with its addresses as JSON in `$JSON`.
    #[serde(default = "default_true")]
    pub emit_json: bool,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            dir: default_hooks_dir(),
            timeout: default_hook_timeout(),
            max_parallel: default_max_parallel(),
            emit_json: true,
        }
    }
}

/// Where replies of an interface's addresses go: `auto` copies the interface's default route
/// from the main table; an address is a fixed gateway (for its family; the other family stays
/// `auto`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PolicyGateway {
    #[default]
    Auto,
    Fixed(std::net::IpAddr),
}

impl<'de> Deserialize<'de> for PolicyGateway {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(PolicyGateway::Auto);
        }
        s.parse()
            .map(PolicyGateway::Fixed)
            .map_err(|_| de::Error::custom(format!("gateway `{s}` is neither `auto` nor an IP address")))
    }
}

/// Per-interface policy routing: replies leave through the interface they came in on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRoutingConfig {
    pub interface: String,
    /// Routing table; default 9999 + ifindex (network-event-broker's convention).
    #[serde(default)]
    pub table: Option<u32>,
    /// Priority of the `from`/`to` rules.
    #[serde(default = "default_policy_priority")]
    pub priority: u32,
    #[serde(default)]
    pub gateway: PolicyGateway,
}

fn default_policy_priority() -> u32 {
    1000
}
