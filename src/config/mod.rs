//! The YAML configuration: schema, defaults, and validation with `file:line:col` errors.
//!
//! rust-network-mgr's file is accepted unchanged: `interfaces: [{name, dhcp, address,
//! nftables_zone}]` plus its top-level `socket_path`, `nftables_rules_path` and
//! `http_bind_addr` (the last two are accepted and ignored, with a warning).

mod locate;
mod schema;
mod validate;

pub use schema::*;

use crate::elements::TableRef;
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
    /// The YAML is malformed, does not fit the schema, or fails a check.
    Parse { path: PathBuf, line: usize, column: usize, message: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => write!(f, "{}: {}", path.display(), error),
            ConfigError::Parse { path, line, column, message } => {
                write!(f, "{}:{}:{}: {}", path.display(), line, column, message)
            }
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

/// The validated configuration netmgrd runs with (config only: what is derived from it lives
/// in `setup`).
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
    /// `None`: no cgroup sets (the section is absent).
    pub cgroups: Option<CgroupsConfig>,
    /// `None`: no hook scripts (the section is absent).
    pub hooks: Option<HooksConfig>,
    /// Interfaces whose addresses get `from`/`to` rules and a routing table of their own.
    pub policy_routing: Vec<PolicyRoutingConfig>,
    /// Run as this user with `CAP_NET_ADMIN` only (`--user` wins); read at start only.
    pub user: Option<String>,
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
    /// Reads and parses the file. It is opened non-blocking and must be a regular file, so a
    /// FIFO or a device at the config path is refused at once instead of blocking the loop;
    /// at most `MAX_CONFIG_BYTES` (+1, to see that there is more) are read.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let read_error = |error| ConfigError::Read { path: path.to_path_buf(), error };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(read_error)?;
        if !file.metadata().map_err(read_error)?.is_file() {
            return Err(read_error(std::io::Error::other("not a regular file")));
        }
        let mut text = String::new();
        file.take(locate::MAX_CONFIG_BYTES as u64 + 1).read_to_string(&mut text).map_err(read_error)?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let at = |(line, column): (usize, usize), message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        };
        locate::precheck(text).map_err(|(pos, message)| at(pos, message))?;
        // An empty file (or one with only comments) is a valid, empty config.
        let only_comments = text.lines().all(|l| l.trim().is_empty() || l.trim().starts_with('#'));
        let raw: RawConfig = if only_comments {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
                let message = locate::clean_message(&e.to_string());
                at(locate::refine_position(text, line, column, &message), message)
            })?
        };
        let warnings = validate::legacy_warnings(&raw);
        let control = match (raw.control, raw.socket_path) {
            (Some(c), _) => c,
            (None, Some(p)) => ControlConfig { socket: p, ..ControlConfig::default() },
            (None, None) => ControlConfig::default(),
        };
        let mut config = Config {
            path: path.to_path_buf(),
            log: raw.log,
            control,
            nftables: raw.nftables,
            interfaces: raw.interfaces,
            zones: raw.zones,
            docker: raw.docker,
            cgroups: raw.cgroups,
            hooks: raw.hooks,
            policy_routing: raw.policy_routing,
            nat: raw.nat,
            user: raw.user,
            warnings,
        };
        if let Some(nat) = &mut config.nat {
            locate::number_entries(text, nat);
        }
        // Checks that need the whole document; positions come from searching the text.
        let fail = |(pos, message)| at(pos, message);
        validate::list_lengths(text, &config).map_err(fail)?;
        validate::interfaces(text, &config.interfaces).map_err(fail)?;
        validate::zones(text, &config.zones).map_err(fail)?;
        if let Some(nat) = &config.nat {
            validate::nat(nat, &config.zone_names()).map_err(fail)?;
        }
        if let Some(docker) = &config.docker {
            validate::docker(text, docker).map_err(fail)?;
        }
        if let Some(cgroups) = &config.cgroups {
            validate::cgroups(text, cgroups).map_err(fail)?;
        }
        if let Some(hooks) = &config.hooks {
            validate::hooks(text, hooks).map_err(fail)?;
        }
        validate::policy_routing(text, &config.policy_routing).map_err(fail)?;
        validate::one_owner_per_set(text, &config.set_owners()).map_err(fail)?;
        validate::owned_table(text, &config).map_err(fail)?;
        Ok(config)
    }

    /// (owner, table, set name) of every managed set: `zone NAME` or `docker.sets[i]`.
    pub(crate) fn set_owners(&self) -> Vec<(String, TableRef, String)> {
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
        for (i, c) in self.cgroups.iter().flat_map(|c| c.sets.iter()).enumerate() {
            let table = c.table.clone().unwrap_or_else(|| self.nftables.table.clone());
            out.push((format!("cgroups.sets[{i}]"), table, c.set.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inet::L4Proto;

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
        assert_eq!(
            n.dnat[0].to,
            DnatTarget::Addr(NatTarget { addr: "192.0.2.10".parse().unwrap(), port: Some(80) })
        );
        assert_eq!(n.dnat[1].port.0, vec![(8000, 8100), (9000, 9000)]);
        assert!(matches!(&n.dnat[1].to, DnatTarget::Addr(t) if t.port == Some(8000)));
        assert_eq!(n.dnat[1].proto.protocols(), &[L4Proto::Tcp, L4Proto::Udp]);
        assert_eq!(n.masquerade[0].line, 15);
        // A container target; a port range or hairpin with it is refused when planned.
        let c: DnatTarget = serde_yaml::from_str("\"container:lb:8080\"").unwrap();
        assert_eq!(c, DnatTarget::Container { name: "lb".into(), port: Some(8080) });
        let c: DnatTarget = serde_yaml::from_str("\"container:app_1\"").unwrap();
        assert_eq!(c, DnatTarget::Container { name: "app_1".into(), port: None });
        assert!(serde_yaml::from_str::<DnatTarget>("\"container:a b:80\"").is_err());
        assert!(serde_yaml::from_str::<DnatTarget>("\"container:lb:http\"").is_err());
        assert_eq!(n.snat[0].line, 17);
        assert_eq!(n.forward[1].line, 20);
        let e = err("nat:\n  dnat:\n    - { in_container: lb, in_interface: wg0, port: 8080, to: \"container:app:80\" }\n");
        assert!(e.contains(":3:1: nat.dnat: in_container goes without in_interface"), "{e}");
        let e = err("docker:\n  networks: { b: { subnet: 198.18.1.0/24 } }\n  containers:\n    a: { networks: { b: 198.18.1.3 }, routes: [{ to: 203.0.113.0/24, via: \"2001:db8::1\" }] }\n");
        assert!(e.contains(":4:") && e.contains("one family"), "{e}");
        let e = err("docker:\n  networks: { b: { subnet: 198.18.1.0/24 } }\n  containers:\n    a: { networks: { b: 198.18.2.3 } }\n");
        assert!(e.contains("198.18.2.3 is not a free address of b"), "{e}");
        let e = err(
            "docker:\n  networks:\n    b: { subnet: 198.18.1.0/24 }\n    c: { subnet: 198.18.1.128/25 }\n",
        );
        assert!(e.contains("overlaps"), "{e}");
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

    /// Each of these hung `check` (and a reload) forever or for many seconds.
    #[test]
    fn hostile_configs_fail_fast_with_a_position() {
        let t = std::time::Instant::now();
        let e = err("interfaces: [{name: \"\"}]\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:1:"), "{e}");
        assert!(e.contains("not a valid interface name"), "{e}");
        let e = err("zones:\n  \"\": {}\n");
        assert!(e.contains("not a valid nftables name"), "{e}");
        // An editor's half-written file at the moment of a SIGHUP.
        let e = err("interfaces:\n  - name:\n");
        assert!(e.starts_with("/etc/netmgrd/config.yaml:2:"), "{e}");
        let deep = format!("interfaces: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(err(&deep).contains("nested deeper than 32 levels"));
        let ports: Vec<String> = (1..=65535).map(|p| p.to_string()).collect();
        let many = format!(
            "nat:\n  dnat:\n    - {{ in_interface: eth0, port: [{}], to: 192.0.2.1 }}\n",
            ports.join(",")
        );
        assert!(err(&many).contains("at most 1024"), "{}", err(&many));
        let ifaces: String = (0..5000).map(|i| format!("  - {{ name: e{i} }}\n")).collect();
        let e = err(&format!("interfaces:\n{ifaces}"));
        assert!(e.starts_with("/etc/netmgrd/config.yaml:1:1: `interfaces` has 5000 entries"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "took {:?}", t.elapsed());
    }

    #[test]
    fn owned_table_cannot_be_a_table_with_managed_sets() {
        let e = err("nftables: { owned_table: inet filter }\ninterfaces: [{ name: eth0, zone: wan }]\n");
        assert!(
            e.starts_with("/etc/netmgrd/config.yaml:1:13: nftables.owned_table `inet filter` holds"),
            "{e}"
        );
        let e = err("nftables: { owned_table: inet fw4 }\nzones: { lan: { table: inet fw4 } }\n");
        assert!(e.contains("holds the managed set `lan_ips` (zone lan)"), "{e}");
        assert!(
            parse("nftables: { owned_table: inet mine }\ninterfaces: [{ name: eth0, zone: wan }]\n").is_ok()
        );
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("netmgrd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo.yaml");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = Config::load(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = Config::load(&dir).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
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
