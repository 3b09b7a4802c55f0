//! Docker Engine API JSON shapes: `/version`, `/containers/json`, `/containers/{id}/json` and
//! `/events` lines, read leniently (missing fields are empty, not errors). No I/O here.

use crate::inet::L4Proto;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// API versions this client speaks (1.24: Docker 1.12, 2016, has event filters and
/// everything read here).
pub const OUR_MIN_API: ApiVersion = ApiVersion(1, 24);
pub const OUR_MAX_API: ApiVersion = ApiVersion(1, 45);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl ApiVersion {
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.trim().split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerError(pub String);

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn json(body: &[u8], what: &str) -> Result<Value, DockerError> {
    serde_json::from_slice(body).map_err(|e| DockerError(format!("{what}: invalid JSON: {e}")))
}

/// The highest version both sides support, from an unversioned `GET /version`.
pub fn negotiate(version_body: &[u8]) -> Result<ApiVersion, DockerError> {
    let v = json(version_body, "/version")?;
    let engine_max = v["ApiVersion"]
        .as_str()
        .and_then(ApiVersion::parse)
        .ok_or_else(|| DockerError("/version: no ApiVersion".into()))?;
    let engine_min = v["MinAPIVersion"].as_str().and_then(ApiVersion::parse).unwrap_or(ApiVersion(1, 12));
    let chosen = engine_max.min(OUR_MAX_API);
    if chosen < engine_min || chosen < OUR_MIN_API {
        return Err(DockerError(format!(
            "no common API version: engine {engine_min}..{engine_max}, netmgrd {OUR_MIN_API}..{OUR_MAX_API}"
        )));
    }
    Ok(chosen)
}

/// Ids of the running containers from `GET /containers/json`.
pub fn parse_list(body: &[u8]) -> Result<Vec<String>, DockerError> {
    let v = json(body, "/containers/json")?;
    let list = v.as_array().ok_or_else(|| DockerError("/containers/json: not a list".into()))?;
    Ok(list.iter().filter_map(|c| c["Id"].as_str().map(str::to_string)).collect())
}

/// One published port: host side -> container port. `host_ip`: `None` for both families,
/// `0.0.0.0`/`::` for every address of one family, else one host address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMap {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: L4Proto,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetAddrs {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without the leading `/` Docker puts there.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Per network name.
    pub networks: BTreeMap<String, NetAddrs>,
    pub ports: Vec<PortMap>,
    /// Running and not paused: only such containers count.
    pub active: bool,
    /// Its main process (`State.Pid`; 0 when not running): the way into its namespaces. A
    /// restart changes it.
    pub pid: u32,
}

impl Container {
    pub fn compose_project(&self) -> Option<&str> {
        self.labels.get("com.docker.compose.project").map(String::as_str)
    }
}

/// The `netmgrd.publish` label: `HOSTPORT:PORT[/PROTO],...`.
pub fn parse_publish_label(text: &str) -> Result<Vec<PortMap>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let item = item.trim();
            let (ports, proto) = match item.split_once('/') {
                Some((p, proto)) => (
                    p,
                    L4Proto::parse(proto).ok_or_else(|| format!("`{item}`: protocol must be tcp or udp"))?,
                ),
                None => (item, L4Proto::Tcp),
            };
            let (host, cont) =
                ports.split_once(':').ok_or_else(|| format!("`{item}`: expected HOSTPORT:PORT"))?;
            let port = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
            Ok(PortMap {
                host_ip: None,
                host_port: port(host).ok_or_else(|| format!("`{item}`: bad host port"))?,
                container_port: port(cont).ok_or_else(|| format!("`{item}`: bad container port"))?,
                proto,
            })
        })
        .collect()
}

/// A container from `GET /containers/{id}/json`.
pub fn parse_inspect(body: &[u8]) -> Result<Container, DockerError> {
    let v = json(body, "container inspect")?;
    let id = v["Id"].as_str().ok_or_else(|| DockerError("container inspect: no Id".into()))?.to_string();
    let name = v["Name"].as_str().unwrap_or("").trim_start_matches('/').to_string();
    let labels: BTreeMap<String, String> = v["Config"]["Labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let state = &v["State"];
    let active = state["Running"].as_bool().unwrap_or(false) && !state["Paused"].as_bool().unwrap_or(false);
    let pid = state["Pid"].as_u64().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    let mut networks = BTreeMap::new();
    if let Some(nets) = v["NetworkSettings"]["Networks"].as_object() {
        for (net, n) in nets {
            let ipv4 = n["IPAddress"].as_str().and_then(|s| s.parse().ok());
            let ipv6 = n["GlobalIPv6Address"].as_str().and_then(|s| s.parse().ok());
            networks.insert(net.clone(), NetAddrs { ipv4, ipv6 });
        }
    }
    let mut ports = Vec::new();
    if let Some(map) = v["NetworkSettings"]["Ports"].as_object() {
        for (key, bindings) in map {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let (Some(container_port), Some(proto)) = (port.parse::<u16>().ok(), L4Proto::parse(proto))
            else {
                continue; // sctp or a malformed key
            };
            for b in bindings.as_array().into_iter().flatten() {
                let Some(host_port) = b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()) else {
                    continue;
                };
                // "0.0.0.0" and "::" are per-family wildcards; no address (older Engines)
                // means every family, like the netmgrd.publish label.
                let host_ip = b["HostIp"].as_str().and_then(|s| s.parse::<IpAddr>().ok());
                ports.push(PortMap { host_ip, host_port, container_port, proto });
            }
        }
    }
    if let Some(text) = labels.get("netmgrd.publish") {
        match parse_publish_label(text) {
            Ok(extra) => ports.extend(extra),
            Err(e) => log::warn!("container {name}: label netmgrd.publish: {e}"),
        }
    }
    ports.sort();
    ports.dedup();
    Ok(Container { id, name, labels, networks, ports, active, pid })
}

/// What an event line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    /// Look at this container again (start, unpause, network connect/disconnect).
    Inspect(String),
    /// The container stopped counting (die, stop, destroy, pause).
    Gone(String),
    Ignored,
    /// A network was created or removed: list them again.
    Networks,
}

pub fn parse_event(line: &[u8]) -> Result<EngineEvent, DockerError> {
    let v = json(line, "event")?;
    let kind = v["Type"].as_str().unwrap_or("container");
    // Actions may carry a suffix ("health_status: healthy", "exec_start: sh").
    let action = v["Action"].as_str().or_else(|| v["status"].as_str()).unwrap_or("");
    let action = action.split(':').next().unwrap_or("").trim();
    let actor = &v["Actor"];
    let id = actor["ID"].as_str().or_else(|| v["id"].as_str()).unwrap_or("");
    Ok(match (kind, action) {
        ("container", "start" | "unpause" | "restart") if !id.is_empty() => EngineEvent::Inspect(id.into()),
        ("container", "die" | "stop" | "destroy" | "pause") if !id.is_empty() => EngineEvent::Gone(id.into()),
        ("network", "connect" | "disconnect") => match actor["Attributes"]["container"].as_str() {
            Some(c) if !c.is_empty() => EngineEvent::Inspect(c.into()),
            _ => EngineEvent::Ignored,
        },
        ("network", "create" | "destroy" | "remove") => EngineEvent::Networks,
        _ => EngineEvent::Ignored,
    })
}

/// A network as `GET /networks` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineNetwork {
    pub id: String,
    pub name: String,
    /// IPAM subnets (IPv4 and IPv6).
    pub subnets: Vec<crate::prefix::IpPrefix>,
    /// The `netmgrd.managed` label: which netmgrd created it (its config file), if one did.
    pub owner: Option<String>,
    /// Containers attached now.
    pub containers: usize,
}

/// The label netmgrd puts on the networks it creates (the only ones it ever deletes), with
/// its config file as the value, so two netmgrd instances never delete each other's.
pub const MANAGED_LABEL: &str = "netmgrd.managed";

/// `GET /networks`.
pub fn parse_networks(body: &[u8]) -> Result<Vec<EngineNetwork>, DockerError> {
    let v = json(body, "network list")?;
    let list = v.as_array().ok_or_else(|| DockerError("network list: not an array".into()))?;
    Ok(list
        .iter()
        .filter_map(|n| {
            let subnets = n["IPAM"]["Config"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["Subnet"].as_str()?.parse().ok())
                .collect();
            Some(EngineNetwork {
                id: n["Id"].as_str()?.to_string(),
                name: n["Name"].as_str()?.to_string(),
                subnets,
                owner: n["Labels"][MANAGED_LABEL].as_str().map(String::from),
                containers: n["Containers"].as_object().map_or(0, |c| c.len()),
            })
        })
        .collect())
}

/// `POST /networks/create` body: a bridge network with IPAM subnet(s) and gateway.
pub fn network_create_body(
    owner: &str,
    name: &str,
    subnet: crate::prefix::IpPrefix,
    gateway: Option<std::net::IpAddr>,
    ipv6_subnet: Option<crate::prefix::IpPrefix>,
) -> String {
    let net = |p: crate::prefix::IpPrefix| format!("{}/{}", p.network(), p.len);
    let mut config = vec![serde_json::json!({ "Subnet": net(subnet) })];
    if let Some(g) = gateway {
        config[0]["Gateway"] = serde_json::Value::String(g.to_string());
    }
    if let Some(p6) = ipv6_subnet {
        config.push(serde_json::json!({ "Subnet": net(p6) }));
    }
    serde_json::json!({
        "Name": name,
        "Driver": "bridge",
        "CheckDuplicate": true,
        "EnableIPv6": ipv6_subnet.is_some(),
        "IPAM": { "Driver": "default", "Config": config },
        "Labels": { MANAGED_LABEL: owner },
    })
    .to_string()
}

/// `POST /networks/{id}/connect` body with a fixed address.
pub fn network_connect_body(container: &str, ip: std::net::IpAddr) -> String {
    let ipam = if ip.is_ipv4() {
        serde_json::json!({ "IPv4Address": ip.to_string() })
    } else {
        serde_json::json!({ "IPv6Address": ip.to_string() })
    };
    serde_json::json!({ "Container": container, "EndpointConfig": { "IPAMConfig": ipam } }).to_string()
}

/// The Engine's error text (`{"message": "..."}`), or the body's start.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// The `/events` query: containers and networks only.
pub fn events_path(version: ApiVersion) -> String {
    let filters = r#"{"type":["container","network"]}"#;
    format!("/v{version}/events?filters={}", super::http::url_encode(filters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(br#"{"ApiVersion":"1.41","MinAPIVersion":"1.12"}"#), Ok(ApiVersion(1, 41)));
        assert_eq!(negotiate(br#"{"ApiVersion":"1.99","MinAPIVersion":"1.24"}"#), Ok(OUR_MAX_API));
        assert!(negotiate(br#"{"ApiVersion":"1.99","MinAPIVersion":"1.50"}"#).is_err());
        assert!(negotiate(br#"{"ApiVersion":"1.20"}"#).is_err());
        assert!(negotiate(b"not json").is_err());
        assert!(negotiate(b"{}").is_err());
    }

    #[test]
    fn events() {
        let e = |s: &str| parse_event(s.as_bytes()).unwrap();
        assert_eq!(
            e(r#"{"Type":"container","Action":"start","Actor":{"ID":"abc"}}"#),
            EngineEvent::Inspect("abc".into())
        );
        assert_eq!(
            e(r#"{"status":"die","id":"abc","Type":"container","Action":"die","Actor":{"ID":"abc"}}"#),
            EngineEvent::Gone("abc".into())
        );
        assert_eq!(
            e(r#"{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"abc"}}"#),
            EngineEvent::Ignored
        );
        assert_eq!(
            e(r#"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"abc"}}"#),
            EngineEvent::Ignored
        );
        assert_eq!(
            e(
                r#"{"Type":"network","Action":"disconnect","Actor":{"ID":"net1","Attributes":{"container":"abc","name":"br"}}}"#
            ),
            EngineEvent::Inspect("abc".into())
        );
        assert_eq!(e(r#"{"Type":"network","Action":"create","Actor":{"ID":"n"}}"#), EngineEvent::Networks);
        assert_eq!(e(r#"{"Type":"network","Action":"destroy","Actor":{"ID":"n"}}"#), EngineEvent::Networks);
        assert!(parse_event(b"{\"Type\":").is_err());
    }

    #[test]
    fn publish_label() {
        let p = parse_publish_label("8080:80, 5353:53/udp").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].proto, L4Proto::Udp);
        assert!(parse_publish_label("80").is_err());
        assert!(parse_publish_label("0:80").is_err());
        assert!(parse_publish_label("80:80/sctp").is_err());
    }
}

#[cfg(test)]
mod network_tests {
    use super::*;

    /// The shape of `GET /networks` (Engine 28), trimmed to the fields read.
    const NETWORKS: &str = r#"[
      {"Name":"bridge","Id":"aa11","Driver":"bridge","IPAM":{"Driver":"default","Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Containers":{"c1":{"Name":"web"}},"Labels":{}},
      {"Name":"backend","Id":"bb22","Driver":"bridge","IPAM":{"Driver":"default","Config":[{"Subnet":"198.18.104.0/24"},{"Subnet":"2001:db8:104::/64"}]},"Containers":{},"Labels":{"netmgrd.managed":"/etc/netmgrd/config.yaml"}},
      {"Name":"none","Id":"cc33","Driver":"null","IPAM":{"Driver":"default","Config":null},"Containers":null,"Labels":null}
    ]"#;

    #[test]
    fn networks_list_bodies_and_errors() {
        let nets = parse_networks(NETWORKS.as_bytes()).unwrap();
        assert_eq!(nets.len(), 3);
        assert_eq!(
            (nets[0].name.as_str(), nets[0].owner.as_deref(), nets[0].containers),
            ("bridge", None, 1)
        );
        assert_eq!(nets[1].subnets.len(), 2);
        assert_eq!(nets[1].owner.as_deref(), Some("/etc/netmgrd/config.yaml"));
        assert!(nets[2].subnets.is_empty());
        assert!(parse_networks(b"{}").is_err());
        let body = network_create_body(
            "/etc/netmgrd/config.yaml",
            "backend",
            "198.18.104.7/24".parse().unwrap(),
            Some("198.18.104.1".parse().unwrap()),
            None,
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "198.18.104.0/24");
        assert_eq!(v["IPAM"]["Config"][0]["Gateway"], "198.18.104.1");
        assert_eq!(v["Labels"][MANAGED_LABEL], "/etc/netmgrd/config.yaml");
        let v: Value =
            serde_json::from_str(&network_connect_body("abc", "198.18.104.2".parse().unwrap())).unwrap();
        assert_eq!(v["EndpointConfig"]["IPAMConfig"]["IPv4Address"], "198.18.104.2");
        assert_eq!(error_message(br#"{"message":"Address already in use"}"#), "Address already in use");
        assert_eq!(error_message(b"plain"), "plain");
    }
}
