//! The YAML configuration: schema, defaults, and validation with `file:line:col` errors.
//!
//! rust-network-mgr's file is accepted unchanged: `interfaces: [{name, dhcp, address,
//! nftables_zone}]` plus its top-level `socket_path`, `nftables_rules_path` and
//! `http_bind_addr` (the last two are accepted and ignored, with a warning).

use crate::prefix::IpPrefix;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a config path came from when none is given on the command line.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netmgrd/config.yaml";
pub const DEFAULT_SOCKET_PATH: &str = "/run/netmgrd.sock";

#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read { path: PathBuf, error: std::io::Error },
    /// The YAML is malformed or does not fit the schema.
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    /// A rule that cannot be built; the message starts with `file:line:col:`.
    Rule(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => write!(f, "{}: {}", path.display(), error),
            ConfigError::Parse { path, line, column, message } => {
                write!(f, "{}:{}:{}: {}", path.display(), line, column, message)
            }
            ConfigError::Rule(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which file to read: `--config`, else `$NETMGRD_CONFIG`, else `$RUST_NETWORK_MGR_CONFIG`,
/// else the default path.
pub fn resolve_path(cli: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    for var in ["NETMGRD_CONFIG", "RUST_NETWORK_MGR_CONFIG"] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(v);
        }
    }
    PathBuf::from(DEFAULT_CONFIG_PATH)
}

/// nftables address family of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Inet,
    Ip,
    Ip6,
    Bridge,
    Netdev,
    Arp,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
            Family::Arp => "arp",
        }
    }

    fn parse(s: &str) -> Option<Family> {
        Some(match s {
            "inet" => Family::Inet,
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "bridge" => Family::Bridge,
            "netdev" => Family::Netdev,
            "arp" => Family::Arp,
            _ => return None,
        })
    }
}

/// A table named as nft names it: `inet filter` (a bare `filter` means `inet filter`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    pub family: Family,
    pub name: String,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family.name(), self.name)
    }
}

impl TableRef {
    pub fn parse(s: &str) -> Result<TableRef, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let (family, name) = match words.as_slice() {
            [name] => (Family::Inet, *name),
            [fam, name] => (
                Family::parse(fam).ok_or_else(|| {
                    format!("unknown table family `{fam}` (expected inet, ip, ip6, bridge, netdev or arp)")
                })?,
                *name,
            ),
            _ => return Err(format!("`{s}` is not a table (expected e.g. `inet filter`)")),
        };
        check_nft_name(name)?;
        Ok(TableRef { family, name: name.to_string() })
    }
}

impl<'de> Deserialize<'de> for TableRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TableRef::parse(&s).map_err(de::Error::custom)
    }
}

/// nft identifiers: a letter, then letters, digits, `_`, `-`, `.`; at most 255 bytes.
pub fn check_nft_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok && name.len() <= 255 {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid nftables name (a letter, then letters, digits, _ - .)"))
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
    /// IP protocol numbers.
    pub fn numbers(self) -> Vec<u8> {
        match self {
            ProtoSel::Tcp => vec![6],
            ProtoSel::Udp => vec![17],
            ProtoSel::Both => vec![6, 17],
        }
    }
}

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
    #[serde(default, deserialize_with = "opt_nft_name")]
    pub in_zone: Option<String>,
    #[serde(default)]
    pub proto: ProtoSel,
    pub port: PortSpec,
    pub to: NatTarget,
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
struct RawConfig {
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    control: Option<ControlConfig>,
    #[serde(default)]
    nftables: NftablesConfig,
    #[serde(default)]
    interfaces: Vec<InterfaceConfig>,
    #[serde(default)]
    zones: BTreeMap<String, ZoneConfig>,
    #[serde(default)]
    docker: Option<DockerConfig>,
    #[serde(default)]
    nat: Option<NatConfig>,
    // rust-network-mgr's top-level keys.
    #[serde(default)]
    socket_path: Option<PathBuf>,
    #[serde(default)]
    nftables_rules_path: Option<String>,
    #[serde(default)]
    http_bind_addr: Option<String>,
}

/// The validated configuration netmgrd runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub log: LogConfig,
    pub control: ControlConfig,
    pub nftables: NftablesConfig,
    pub interfaces: Vec<InterfaceConfig>,
    pub zones: BTreeMap<String, ZoneConfig>,
    /// `None`: no Docker integration (the section is absent).
    pub docker: Option<DockerConfig>,
    /// `None`: no NAT or forward rules (the section is absent).
    pub nat: Option<NatConfig>,
    /// The owned table this config asks for, computed once at load (plan reads it every turn).
    pub owned: Option<crate::owned::OwnedPlan>,
    /// Things worth a warning that do not stop netmgrd (ignored legacy keys).
    pub warnings: Vec<String>,
}

/// The sets one zone manages, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSets {
    pub table: TableRef,
    pub ipv4_set: String,
    pub ipv6_set: String,
    pub networks4_set: Option<String>,
    pub networks6_set: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let parse_error = |line: usize, column: usize, message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        };
        // An empty file (or one with only comments) is a valid, empty config.
        let raw: RawConfig = if text.trim().lines().all(|l| l.trim().is_empty() || l.trim().starts_with('#'))
        {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
                let message = clean_message(&e.to_string());
                let (line, column) = refine_position(text, line, column, &message);
                parse_error(line, column, message)
            })?
        };

        let mut warnings = Vec::new();
        if raw.nftables_rules_path.is_some() {
            warnings.push("`nftables_rules_path` (rust-network-mgr) is ignored".to_string());
        }
        if raw.http_bind_addr.is_some() {
            warnings
                .push("`http_bind_addr` (rust-network-mgr) is ignored: use the control socket".to_string());
        }
        let control = match (raw.control, raw.socket_path) {
            (Some(c), _) => c,
            (None, Some(p)) => ControlConfig { socket: p, ..ControlConfig::default() },
            (None, None) => ControlConfig::default(),
        };

        // Checks that need the whole document; located by searching the text.
        let mut seen = BTreeMap::new();
        for (i, iface) in raw.interfaces.iter().enumerate() {
            if iface.name.is_empty() || iface.name.len() > 15 || iface.name.contains(['/', ' ']) {
                let (line, column) = locate(text, &iface.name, 0);
                return Err(parse_error(
                    line,
                    column,
                    format!("`{}` is not a valid interface name", iface.name),
                ));
            }
            if let Some(first) = seen.insert(iface.name.clone(), i) {
                let _ = first;
                let (line, column) = locate(text, &iface.name, 1);
                return Err(parse_error(line, column, format!("interface `{}` is listed twice", iface.name)));
            }
        }
        for zone in raw.zones.keys() {
            if let Err(message) = check_nft_name(zone) {
                let (line, column) = locate(text, zone, 0);
                return Err(parse_error(line, column, message));
            }
        }
        let config = Config {
            path: path.to_path_buf(),
            log: raw.log,
            control,
            nftables: raw.nftables,
            interfaces: raw.interfaces,
            zones: raw.zones,
            docker: raw.docker,
            nat: raw.nat,
            owned: None,
            warnings,
        };
        let mut config = config;
        if let Some(nat) = &mut config.nat {
            number_entries(text, nat);
        }
        if let Some(nat) = &config.nat {
            let zones = config.zone_names();
            let zone_ok = |z: &Option<String>| z.as_ref().is_none_or(|z| zones.contains(z));
            let fail = |line: usize, msg: String| Err(parse_error(line, 1, msg));
            for r in &nat.dnat {
                if r.in_interface.is_some() == r.in_zone.is_some() {
                    return fail(r.line, "nat.dnat: give in_interface or in_zone (one of them)".into());
                }
                if !zone_ok(&r.in_zone) {
                    return fail(
                        r.line,
                        format!("nat.dnat: unknown zone `{}`", r.in_zone.as_deref().unwrap_or("")),
                    );
                }
            }
            for (out_i, out_z, line, what) in
                nat.snat.iter().map(|r| (&r.out_interface, &r.out_zone, r.line, "snat")).chain(
                    nat.masquerade.iter().map(|r| (&r.out_interface, &r.out_zone, r.line, "masquerade")),
                )
            {
                if out_i.is_some() && out_z.is_some() {
                    return fail(line, format!("nat.{what}: give out_interface or out_zone, not both"));
                }
                if !zone_ok(out_z) {
                    return fail(
                        line,
                        format!("nat.{what}: unknown zone `{}`", out_z.as_deref().unwrap_or("")),
                    );
                }
            }
            for r in &nat.snat {
                if let Some(src) = r.source {
                    if src.addr.is_ipv4() != r.to.addr.is_ipv4() {
                        return fail(r.line, "nat.snat: source and to are of different families".into());
                    }
                }
            }
            for r in &nat.forward {
                if r.port.is_some() && r.proto.is_none() {
                    return fail(r.line, "nat.forward: a port needs proto (tcp, udp or both)".into());
                }
            }
        }
        let config = config;
        if let Some(d) = &config.docker {
            for (i, set) in d.sets.iter().enumerate() {
                if set.ipv4_set.is_none() && set.ipv6_set.is_none() {
                    let (line, column) = locate(text, "sets", 0);
                    return Err(parse_error(
                        line,
                        column,
                        format!("docker.sets[{i}]: give ipv4_set, ipv6_set or both"),
                    ));
                }
            }
        }
        // Two owners must not write the same set: each would delete the other's elements.
        let mut owners: BTreeMap<(TableRef, String), String> = BTreeMap::new();
        for (owner, table, name) in config.set_owners() {
            if let Some(other) = owners.insert((table.clone(), name.clone()), owner.clone()) {
                let (line, column) = locate(text, &name, 1);
                return Err(parse_error(
                    line,
                    column,
                    format!("set `{name}` in table `{table}` is used by both `{other}` and `{owner}`"),
                ));
            }
        }
        let mut config = config;
        config.owned = crate::owned::owned_table(&config).map_err(ConfigError::Rule)?;
        Ok(config)
    }

    /// (owner, table, set name) of every managed set: `zone NAME` or `docker.sets[i]`.
    fn set_owners(&self) -> Vec<(String, TableRef, String)> {
        let mut out = Vec::new();
        for zone in self.zone_names() {
            let s = self.zone_sets(&zone);
            let names =
                [Some(&s.ipv4_set), Some(&s.ipv6_set), s.networks4_set.as_ref(), s.networks6_set.as_ref()];
            for name in names.into_iter().flatten() {
                out.push((format!("zone {zone}"), s.table.clone(), name.clone()));
            }
        }
        for (i, d) in self.docker.iter().flat_map(|d| d.sets.iter()).enumerate() {
            let table = d.table.clone().unwrap_or_else(|| self.nftables.table.clone());
            for name in [&d.ipv4_set, &d.ipv6_set].into_iter().flatten() {
                out.push((format!("docker.sets[{i}]"), table.clone(), name.clone()));
            }
        }
        out
    }

    /// Every zone: those declared under `zones:` and those named by an interface.
    pub fn zone_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.zones.keys().cloned().collect();
        for iface in &self.interfaces {
            if let Some(z) = &iface.nftables_zone {
                if !names.contains(z) {
                    names.push(z.clone());
                }
            }
        }
        names.sort();
        names
    }

    /// The sets a zone manages: `Z_ips` and `Z_ipv6` in `nftables.table` unless overridden.
    pub fn zone_sets(&self, zone: &str) -> ZoneSets {
        let z = self.zones.get(zone).cloned().unwrap_or_default();
        ZoneSets {
            table: z.table.unwrap_or_else(|| self.nftables.table.clone()),
            ipv4_set: z.ipv4_set.unwrap_or_else(|| format!("{zone}_ips")),
            ipv6_set: z.ipv6_set.unwrap_or_else(|| format!("{zone}_ipv6")),
            networks4_set: z.networks4_set,
            networks6_set: z.networks6_set,
        }
    }

    /// Interfaces that belong to `zone`.
    pub fn zone_interfaces(&self, zone: &str) -> Vec<&str> {
        self.interfaces
            .iter()
            .filter(|i| i.nftables_zone.as_deref() == Some(zone))
            .map(|i| i.name.as_str())
            .collect()
    }
}

/// Gives each `nat:` entry the line it starts on (serde_yaml keeps no positions).
fn number_entries(text: &str, nat: &mut NatConfig) {
    let after = text.lines().position(|l| l.starts_with("nat:")).unwrap_or(0);
    let lines = |key: &str| list_item_lines(text, key, Some(after));
    let fill = |lines: Vec<usize>, n: usize| -> Vec<usize> {
        let last = lines.last().copied().unwrap_or(after + 1);
        (0..n).map(|i| lines.get(i).copied().unwrap_or(last)).collect()
    };
    let numbered = fill(lines("dnat"), nat.dnat.len());
    for (r, l) in nat.dnat.iter_mut().zip(numbered) {
        r.line = l;
    }
    let numbered = fill(lines("snat"), nat.snat.len());
    for (r, l) in nat.snat.iter_mut().zip(numbered) {
        r.line = l;
    }
    let numbered = fill(lines("masquerade"), nat.masquerade.len());
    for (r, l) in nat.masquerade.iter_mut().zip(numbered) {
        r.line = l;
    }
    let numbered = fill(lines("forward"), nat.forward.len());
    for (r, l) in nat.forward.iter_mut().zip(numbered) {
        r.line = l;
    }
}

/// For a key holding a list: the 1-based line of each block-style item (`- ...`), or of the
/// key itself for flow style (`key: [...]`). With `key` alone (no list), its own line.
fn list_item_lines(text: &str, key: &str, after_line: Option<usize>) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = after_line.unwrap_or(0);
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(k) = (start..lines.len()).find(|&i| {
        let t = lines[i].trim_start();
        t.starts_with(&format!("{key}:")) && !t.starts_with('#')
    }) else {
        return Vec::new();
    };
    let key_indent = indent(lines[k]);
    let rest = lines[k].trim_start()[key.len() + 1..].trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return vec![k + 1]; // flow style: every item on the key's line
    }
    let mut out = Vec::new();
    let mut item_indent = None;
    for (i, l) in lines.iter().enumerate().skip(k + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent(l) <= key_indent && !t.starts_with("- ") && t != "-" {
            break;
        }
        if indent(l) < key_indent {
            break;
        }
        if t.starts_with("- ") || t == "-" {
            match item_indent {
                None => item_indent = Some(indent(l)),
                Some(ii) if indent(l) != ii => continue,
                _ => {}
            }
            out.push(i + 1);
        }
    }
    if out.is_empty() {
        out.push(k + 1);
    }
    out
}

/// serde_yaml appends " at line L column C"; the position is printed in front instead.
/// Unknown-field errors get a "did you mean" when one expected name is close.
fn clean_message(message: &str) -> String {
    let base = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let mut out = base.to_string();
    if let Some(rest) = base.split_once("unknown field `").map(|(_, r)| r) {
        if let Some((field, expected)) = rest.split_once('`') {
            let best =
                expected.split('`').skip(1).step_by(2).map(|cand| (edit_distance(field, cand), cand)).min();
            if let Some((d, cand)) = best {
                if d <= 2 {
                    out.push_str(&format!(" (did you mean `{cand}`?)"));
                }
            }
        }
    }
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(cur).min(row[j]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// serde_yaml places errors from our own value checks at the start of the enclosing mapping;
/// the message quotes the offending value, so point at that value when it follows.
fn refine_position(text: &str, line: usize, column: usize, message: &str) -> (usize, usize) {
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty());
    if let Some(q) = quoted {
        let skipped: usize = text.lines().take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
        if let Some(rest) = text.get(skipped..) {
            let (l, c) = locate(rest, q, 0);
            if (l, c) != (1, 1) || rest.lines().next().is_some_and(|first| first.contains(q)) {
                return (line + l - 1, c);
            }
        }
    }
    (line, column)
}

/// 1-based line and column of the `nth` occurrence of `needle` as a whole YAML scalar.
fn locate(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let mut found = 0;
    for (ln, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let mut start = 0;
        while let Some(pos) = code[start..].find(needle) {
            let col = start + pos;
            let before = code[..col].chars().next_back();
            let after = code[col + needle.len()..].chars().next();
            let boundary = |c: Option<char>| {
                c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            };
            if boundary(before) && boundary(after) {
                if found == nth {
                    return (ln + 1, col + 1);
                }
                found += 1;
            }
            start = col + needle.len();
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/netmgrd/config.yaml"), text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn rust_network_mgr_file_is_accepted_unchanged() {
        let text = "interfaces:\n  - name: eth0 # Example interface, replace with actual\n    dhcp: true\n    nftables_zone: wan # Example zone, maps to 'wan_ips' set\n\n# socket_path: /run/rust-network-mgr.sock\nsocket_path: /run/rnm.sock\nnftables_rules_path: /etc/rust-network-mgr/rules.d\n";
        let c = parse(text).unwrap();
        assert_eq!(c.interfaces[0].name, "eth0");
        assert_eq!(c.interfaces[0].nftables_zone.as_deref(), Some("wan"));
        assert_eq!(c.control.socket, PathBuf::from("/run/rnm.sock"));
        assert_eq!(c.warnings.len(), 1);
        let sets = c.zone_sets("wan");
        assert_eq!(sets.table.to_string(), "inet filter");
        assert_eq!(sets.ipv4_set, "wan_ips");
        assert_eq!(sets.ipv6_set, "wan_ipv6");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("# nothing here\n").unwrap();
        assert_eq!(c.control.socket, PathBuf::from(DEFAULT_SOCKET_PATH));
        assert_eq!(c.control.mode, 0o660);
        assert_eq!(c.nftables.on_exit, OnExit::Keep);
        assert!(c.zone_names().is_empty());
    }

    #[test]
    fn zone_synonym_and_overrides() {
        let text = "nftables: { table: ip fw, on_exit: flush }\ninterfaces:\n  - { name: eth1, address: 192.0.2.1/24, zone: lan }\nzones:\n  lan: { ipv4_set: lan4, networks4_set: lan_nets }\n  dmz: { table: inet other }\ncontrol: { mode: \"0600\", group: netadm }\n";
        let c = parse(text).unwrap();
        assert_eq!(c.zone_names(), vec!["dmz".to_string(), "lan".to_string()]);
        let lan = c.zone_sets("lan");
        assert_eq!(lan.table.to_string(), "ip fw");
        assert_eq!(lan.ipv4_set, "lan4");
        assert_eq!(lan.ipv6_set, "lan_ipv6");
        assert_eq!(lan.networks4_set.as_deref(), Some("lan_nets"));
        assert_eq!(c.zone_sets("dmz").table.to_string(), "inet other");
        assert_eq!(c.zone_interfaces("lan"), vec!["eth1"]);
        assert_eq!(c.control.mode, 0o600);
        assert_eq!(c.nftables.on_exit, OnExit::Flush);
    }

    #[test]
    fn unknown_key_is_located_with_suggestion() {
        let e = err("interfaces:\n  - name: eth0\n    nftables_zon: wan\n");
        assert!(
            e.starts_with("/etc/netmgrd/config.yaml:3:5: interfaces[0]: unknown field `nftables_zon`"),
            "{e}"
        );
        assert!(e.contains("did you mean `nftables_zone`"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err("interfaces:\n  - name: eth0\n    dhcp: maybe\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:3:11: "), "{e}");
        let e = err("interfaces: 7\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:1:13: "), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = err("interfaces:\n  - name: eth0\n    address: 192.0.2.300/24\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:3:14: "), "{e}");
        assert!(e.contains("192.0.2.300/24"), "{e}");
        let e = err("nftables:\n  table: foo bar baz\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:2:10: "), "{e}");
        let e = err("interfaces:\n  - { name: eth0, zone: \"w an\" }\n");
        assert!(e.contains("not a valid nftables name"), "{e}");
        let e = err("control: { mode: \"0999\" }\n");
        assert!(e.contains("file mode"), "{e}");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = err("interfaces:\n  - name: eth0\n   bad indent: [\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:3:"), "{e}");
    }

    #[test]
    fn duplicate_interface_points_at_second() {
        let e = err("interfaces:\n  - { name: eth0, zone: wan }\n  - { name: eth0, zone: lan }\n");
        assert_eq!(e, "/etc/netmgrd/config.yaml:3:13: interface `eth0` is listed twice");
    }

    #[test]
    fn two_zones_cannot_share_a_set() {
        let e = err("zones:\n  a: { ipv4_set: shared }\n  b: { ipv4_set: shared }\n");
        assert!(e.contains("used by both `zone a` and `zone b`"), "{e}");
        let e = err("interfaces: [{ name: eth0, zone: web }]\ndocker:\n  sets: [{ ipv4_set: web_ips }]\n");
        assert!(e.contains("used by both `zone web` and `docker.sets[0]`"), "{e}");
    }

    #[test]
    fn docker_section() {
        let text = "docker:\n  sets:\n    - ipv4_set: web4\n      ipv6_set: web6\n      match: { labels: { app: web }, names: [\"web-*\"], networks: [front] }\n    - ipv4_set: db4\n      table: ip other\n      match: { labels: [tier, \"env=prod\"], compose_project: shop }\n  publish: true\n";
        let c = parse(text).unwrap();
        let d = c.docker.as_ref().unwrap();
        assert!(d.publish);
        assert_eq!(d.sets[0].matcher.labels.0, vec![("app".to_string(), Some("web".to_string()))]);
        assert_eq!(
            d.sets[1].matcher.labels.0,
            vec![("tier".to_string(), None), ("env".to_string(), Some("prod".to_string()))]
        );
        assert_eq!(d.socket_path(Some("unix:///tmp/d.sock".into())), PathBuf::from("/tmp/d.sock"));
        assert_eq!(d.socket_path(Some("tcp://1.2.3.4:2375".into())), PathBuf::from(DEFAULT_DOCKER_SOCKET));
        assert!(parse("").unwrap().docker.is_none());
        let e = err("docker:\n  sets:\n    - { table: inet filter }\n");
        assert!(e.contains("give ipv4_set, ipv6_set or both"), "{e}");
        let e = err("docker:\n  sets: [{ ipv4_set: a, match: { nmes: [x] } }]\n");
        assert!(e.contains("did you mean `names`"), "{e}");
    }

    #[test]
    fn nat_section_with_entry_lines() {
        let text = "interfaces:\n  - { name: eth0, zone: wan }\n  - { name: eth1, zone: lan }\nnat:\n  enable_forwarding: true\n  forward_policy: drop\n  dnat:\n    - in_zone: wan\n      proto: tcp\n      port: 8080\n      to: 192.0.2.10:80\n      hairpin: true\n    - { in_interface: eth0, proto: both, port: [\"8000-8100\", 9000], to: \"[2001:db8::10]:8000\" }\n  masquerade:\n    - { out_zone: wan, source: 192.0.2.0/24 }\n  snat:\n    - { out_interface: eth0, source: 198.51.100.0/24, to: 203.0.113.7 }\n  forward:\n    - { from: lan, to: wan, action: accept }\n    - { from: wan, to: 192.0.2.10/32, proto: tcp, port: 22, action: drop }\n";
        let c = parse(text).unwrap();
        let n = c.nat.as_ref().unwrap();
        assert!(n.enable_forwarding);
        assert_eq!(n.forward_policy, Verdict::Drop);
        assert_eq!(n.dnat[0].line, 8);
        assert_eq!(n.dnat[1].line, 13);
        assert_eq!(n.dnat[0].to, NatTarget { addr: "192.0.2.10".parse().unwrap(), port: Some(80) });
        assert_eq!(n.dnat[1].port.0, vec![(8000, 8100), (9000, 9000)]);
        assert_eq!(n.dnat[1].to.port, Some(8000));
        assert_eq!(n.dnat[1].proto.numbers(), vec![6, 17]);
        assert_eq!(n.masquerade[0].line, 15);
        assert_eq!(n.snat[0].line, 17);
        assert_eq!(n.forward[1].line, 20);
        let e = err("nat:\n  dnat:\n    - { port: 80, to: 192.0.2.1 }\n");
        assert!(e.contains(":3:1: nat.dnat: give in_interface or in_zone"), "{e}");
        let e = err("nat:\n  dnat:\n    - { in_zone: nope, port: 80, to: 192.0.2.1 }\n");
        assert!(e.contains("unknown zone `nope`"), "{e}");
        let e = err("nat:\n  dnat:\n    - { in_interface: eth0, port: \"90-80\", to: 192.0.2.1 }\n");
        assert!(e.contains("not a port range"), "{e}");
        let e = err("nat:\n  dnat:\n    - { in_interface: eth0, port: 80, to: \"192.0.2.1:http\" }\n");
        assert!(e.contains("is not ADDR, ADDR:PORT"), "{e}");
        let e = err("nat:\n  forward:\n    - { from: lan, port: 22, action: drop }\n");
        assert!(e.contains("a port needs proto"), "{e}");
        let e = err("nat:\n  forward:\n    - { from: lan, action: reject }\n");
        assert!(e.contains("unknown variant `reject`"), "{e}");
    }

    #[test]
    fn config_path_lookup_order() {
        let none = |_: &str| None;
        assert_eq!(resolve_path(None, none), PathBuf::from(DEFAULT_CONFIG_PATH));
        let rnm = |k: &str| (k == "RUST_NETWORK_MGR_CONFIG").then(|| "/b".to_string());
        assert_eq!(resolve_path(None, rnm), PathBuf::from("/b"));
        let both = |k: &str| Some(if k == "NETMGRD_CONFIG" { "/a" } else { "/b" }.to_string());
        assert_eq!(resolve_path(None, both), PathBuf::from("/a"));
        assert_eq!(resolve_path(Some(Path::new("/c")), both), PathBuf::from("/c"));
    }
}
