//! A test Docker Engine: real HTTP/1.1 on a unix socket, `/version`, `/containers/json`,
//! `/containers/{id}/json` (shaped like tests/fixtures/docker/inspect_running.json), and a
//! chunked `/events` stream whose chunk boundaries the test chooses, as the Engine's are not
//! object boundaries either.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// network -> (IPv4, IPv6)
    pub networks: BTreeMap<String, (String, String)>,
    /// "80/tcp" -> [(HostIp, HostPort)]
    pub ports: BTreeMap<String, Vec<(String, String)>>,
    pub running: bool,
    pub paused: bool,
}

impl FakeContainer {
    pub fn new(id: &str, name: &str) -> FakeContainer {
        FakeContainer { id: format!("{id:0<64}"), name: name.into(), running: true, ..Default::default() }
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn net(mut self, net: &str, v4: &str, v6: &str) -> Self {
        self.networks.insert(net.into(), (v4.into(), v6.into()));
        self
    }

    pub fn port(mut self, key: &str, host_ip: &str, host_port: &str) -> Self {
        self.ports.entry(key.into()).or_default().push((host_ip.into(), host_port.into()));
        self
    }

    fn inspect(&self) -> Value {
        let networks: serde_json::Map<String, Value> = self
            .networks
            .iter()
            .map(|(n, (v4, v6))| {
                (
                    n.clone(),
                    json!({
                        "IPAMConfig": null, "Links": null, "Aliases": null,
                        "NetworkID": format!("{n:0<64}"), "EndpointID": "e".repeat(64),
                        "Gateway": "", "IPAddress": v4, "IPPrefixLen": 24, "IPv6Gateway": "",
                        "GlobalIPv6Address": v6, "GlobalIPv6PrefixLen": 64,
                        "MacAddress": "02:42:c6:12:00:02", "DriverOpts": null
                    }),
                )
            })
            .collect();
        let ports: serde_json::Map<String, Value> = self
            .ports
            .iter()
            .map(|(k, b)| (k.clone(), b.iter().map(|(ip, p)| json!({"HostIp": ip, "HostPort": p})).collect()))
            .collect();
        json!({
            "Id": self.id,
            "Created": "2026-11-21T20:53:40.000000000Z",
            "Path": "/bin/sleep",
            "Args": ["300"],
            "State": {
                "Status": if self.paused { "paused" } else if self.running { "running" } else { "exited" },
                "Running": self.running, "Paused": self.paused, "Restarting": false,
                "OOMKilled": false, "Dead": false, "Pid": 4242, "ExitCode": 0, "Error": ""
            },
            "Image": "sha256:e8d2247e2e5a7c10a51b881533bee59a4db70e8c13ce00c4dc3f91a9dbcfc23a",
            "Name": format!("/{}", self.name),
            "RestartCount": 0,
            "Driver": "overlay2",
            "Config": { "Hostname": "fake", "Image": "busybox", "Labels": self.labels },
            "NetworkSettings": {
                "Bridge": "", "SandboxID": "s".repeat(64), "HairpinMode": false,
                "Ports": ports, "SandboxKey": "/var/run/docker/netns/fake",
                "IPAddress": "", "GlobalIPv6Address": "", "Networks": networks
            }
        })
    }
}

/// A network of the test Engine: id, subnet, labels.
#[derive(Clone, Debug)]
pub struct FakeNetwork {
    pub id: String,
    pub subnet: String,
    pub labels: Value,
}

/// How the test Engine misbehaves on network requests (the API's error paths).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkFault {
    #[default]
    None,
    /// `POST /networks/create` answers 409 (someone else made it meanwhile).
    ConflictOnCreate,
    /// `POST /networks/{id}/connect` answers 404 (the network went meanwhile).
    MissingOnConnect,
    /// The connection closes in the middle of a connect (the Engine went away).
    CloseOnConnect,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    networks: BTreeMap<String, FakeNetwork>,
    fault: NetworkFault,
    subscribers: Vec<Sender<Vec<u8>>>,
    /// Requests seen, for assertions ("GET /v1.41/events?...").
    requests: Vec<String>,
}

pub struct FakeEngine {
    pub path: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// How event lines are cut into chunks: each line is split at these fractions.
    pub split_events: bool,
}

impl FakeEngine {
    /// Listens at `path` (replacing a stale file).
    pub fn start(path: &Path) -> FakeEngine {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind fake engine");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || loop {
            if sp.load(Ordering::SeqCst) {
                return;
            }
            match listener.accept() {
                Ok((conn, _)) => {
                    let st = st.clone();
                    std::thread::spawn(move || serve(conn, st));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        });
        FakeEngine { path: path.to_path_buf(), state, stop, split_events: true }
    }

    /// Stops listening and cuts every event stream (a dockerd restart or crash).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.lock().unwrap().subscribers.clear();
        let _ = std::fs::remove_file(&self.path);
    }

    /// Restarts on the same path keeping the containers (dockerd restarted).
    pub fn restart(self) -> FakeEngine {
        self.shutdown();
        let containers = std::mem::take(&mut self.state.lock().unwrap().containers);
        let next = FakeEngine::start(&self.path);
        next.state.lock().unwrap().containers = containers;
        next
    }

    pub fn add_network(&self, name: &str, subnet: &str) {
        let n = FakeNetwork { id: format!("net-{name}"), subnet: subnet.into(), labels: json!({}) };
        self.state.lock().unwrap().networks.insert(name.into(), n);
    }

    pub fn networks(&self) -> BTreeMap<String, FakeNetwork> {
        self.state.lock().unwrap().networks.clone()
    }

    pub fn set_fault(&self, fault: NetworkFault) {
        self.state.lock().unwrap().fault = fault;
    }

    /// The IPv4 address a container has on a network, if it is on it.
    pub fn address_on(&self, name: &str, net: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        let c = st.containers.values().find(|c| c.name == name)?;
        c.inspect()["NetworkSettings"]["Networks"][net]["IPAddress"].as_str().map(String::from)
    }

    pub fn subscribers(&self) -> usize {
        self.state.lock().unwrap().subscribers.len()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Adds or replaces a container without telling anyone (state before a sync).
    pub fn put(&self, c: FakeContainer) {
        self.state.lock().unwrap().containers.insert(c.id.clone(), c);
    }

    pub fn id_of(&self, name: &str) -> String {
        self.state
            .lock()
            .unwrap()
            .containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.id.clone())
            .expect("container")
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut FakeContainer)) -> String {
        let mut st = self.state.lock().unwrap();
        let c = st.containers.values_mut().find(|c| c.name == name).expect("container");
        f(c);
        c.id.clone()
    }

    /// `docker run`: the container exists and runs; a `start` event follows.
    pub fn run(&self, c: FakeContainer) {
        let (id, name) = (c.id.clone(), c.name.clone());
        self.put(c);
        self.container_event("create", &id, &name);
        self.container_event("start", &id, &name);
    }

    pub fn stop_container(&self, name: &str) {
        let id = self.update(name, |c| c.running = false);
        self.container_event("kill", &id, name);
        self.container_event("die", &id, name);
        self.container_event("stop", &id, name);
    }

    pub fn remove(&self, name: &str) {
        let id = self.id_of(name);
        self.state.lock().unwrap().containers.remove(&id);
        self.container_event("destroy", &id, name);
    }

    pub fn pause(&self, name: &str, paused: bool) {
        let id = self.update(name, |c| c.paused = paused);
        self.container_event(if paused { "pause" } else { "unpause" }, &id, name);
    }

    pub fn connect(&self, name: &str, net: &str, v4: &str, v6: &str) {
        let id = self.update(name, |c| {
            c.networks.insert(net.into(), (v4.into(), v6.into()));
        });
        self.network_event("connect", net, &id);
    }

    pub fn disconnect(&self, name: &str, net: &str) {
        let id = self.update(name, |c| {
            c.networks.remove(net);
        });
        self.network_event("disconnect", net, &id);
    }

    pub fn container_event(&self, action: &str, id: &str, name: &str) {
        let ev = json!({
            "status": action, "id": id, "from": "busybox", "Type": "container", "Action": action,
            "Actor": { "ID": id, "Attributes": { "image": "busybox", "name": name } },
            "scope": "local", "time": 1795294420u64, "timeNano": 1795294420641967340u64
        });
        self.send_line(&ev.to_string());
    }

    fn network_event(&self, action: &str, net: &str, id: &str) {
        let ev = json!({
            "Type": "network", "Action": action,
            "Actor": { "ID": format!("{net:0<64}"), "Attributes": { "container": id, "name": net, "type": "bridge" } },
            "scope": "local", "time": 1795294420u64, "timeNano": 1795294420766522764u64
        });
        self.send_line(&ev.to_string());
    }

    /// One JSON line on every event stream, cut into two chunks mid-object when
    /// `split_events` (the Engine gives no guarantee either way).
    pub fn send_line(&self, line: &str) {
        let data = format!("{line}\n").into_bytes();
        if self.split_events {
            let cut = data.len() / 3;
            self.send_chunks(&[&data[..cut], &data[cut..]]);
        } else {
            self.send_chunks(&[&data]);
        }
    }

    /// Raw chunks, each framed as `SIZE\r\nDATA\r\n`.
    pub fn send_chunks(&self, chunks: &[&[u8]]) {
        let mut framed = Vec::new();
        for c in chunks {
            framed.extend(format!("{:x}\r\n", c.len()).into_bytes());
            framed.extend_from_slice(c);
            framed.extend(b"\r\n");
        }
        self.send_raw(framed);
    }

    /// Bytes written as they are into every event stream (for broken framing).
    pub fn send_raw(&self, bytes: Vec<u8>) {
        let mut st = self.state.lock().unwrap();
        st.subscribers.retain(|s| s.send(bytes.clone()).is_ok());
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn respond(conn: &mut UnixStream, status: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

fn serve(mut conn: UnixStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Headers until the empty line.
    let mut host = false;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        host |= lower.starts_with("host:");
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
        return;
    }
    let method = request_line.split_whitespace().next().unwrap_or("GET").to_string();
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    state.lock().unwrap().requests.push(format!("{method} {path}"));
    if !host {
        return respond(&mut conn, "400 Bad Request", r#"{"message":"missing Host header"}"#);
    }
    if path == "/version" {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/docker/version.json"
        ))
        .expect("fixture");
        return respond(&mut conn, "200 OK", body.trim());
    }
    let Some(rest) = path.strip_prefix("/v1.41") else {
        return respond(&mut conn, "400 Bad Request", r#"{"message":"client version too new"}"#);
    };
    if rest.starts_with("/events") {
        let (tx, rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = channel();
        state.lock().unwrap().subscribers.push(tx);
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let _ = conn.flush();
        // Until the engine drops the sender (shutdown) or the client goes away.
        while let Ok(bytes) = rx.recv() {
            if conn.write_all(&bytes).is_err() {
                return;
            }
        }
        return;
    }
    if let Some(reply) = networks(&method, rest, &body, &state) {
        // `None`: the connection closes without an answer.
        if let Some((status, body)) = reply {
            respond(&mut conn, status, &body);
        }
        return;
    }
    if rest == "/containers/json" {
        let st = state.lock().unwrap();
        let list: Vec<Value> = st
            .containers
            .values()
            .filter(|c| c.running)
            .map(|c| json!({"Id": c.id, "Names": [format!("/{}", c.name)], "State": "running"}))
            .collect();
        return respond(&mut conn, "200 OK", &Value::Array(list).to_string());
    }
    if let Some(id) = rest.strip_prefix("/containers/").and_then(|r| r.strip_suffix("/json")) {
        let st = state.lock().unwrap();
        return match st.containers.get(id) {
            Some(c) => respond(&mut conn, "200 OK", &c.inspect().to_string()),
            None => {
                respond(&mut conn, "404 Not Found", &format!(r#"{{"message":"No such container: {id}"}}"#))
            }
        };
    }
    respond(&mut conn, "404 Not Found", r#"{"message":"page not found"}"#)
}

/// The network endpoints: `Some(None)` closes the connection without an answer.
fn networks(
    method: &str,
    rest: &str,
    body: &[u8],
    state: &Arc<Mutex<State>>,
) -> Option<Option<(&'static str, String)>> {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut st = state.lock().unwrap();
    if method == "GET" && rest == "/networks" {
        let list: Vec<Value> = st
            .networks
            .iter()
            .map(|(name, n)| {
                json!({"Name": name, "Id": n.id, "Driver": "bridge", "IPAM": {"Driver": "default", "Config": [{"Subnet": n.subnet}]}, "Containers": {}, "Labels": n.labels})
            })
            .collect();
        return Some(Some(("200 OK", Value::Array(list).to_string())));
    }
    if method == "POST" && rest == "/networks/create" {
        let name = req["Name"].as_str().unwrap_or("").to_string();
        if st.fault == NetworkFault::ConflictOnCreate || st.networks.contains_key(&name) {
            return Some(Some((
                "409 Conflict",
                format!(r#"{{"message":"network with name {name} already exists"}}"#),
            )));
        }
        let subnet = req["IPAM"]["Config"][0]["Subnet"].as_str().unwrap_or("").to_string();
        let n = FakeNetwork { id: format!("net-{name}"), subnet, labels: req["Labels"].clone() };
        let id = n.id.clone();
        st.networks.insert(name.clone(), n);
        drop(st);
        let line =
            json!({"Type": "network", "Action": "create", "Actor": {"ID": id, "Attributes": {"name": name}}});
        send_to_subscribers(state, format!("{line}\n"));
        return Some(Some(("201 Created", json!({"Id": id}).to_string())));
    }
    if let Some(id) = rest.strip_prefix("/networks/").and_then(|r| r.strip_suffix("/connect")) {
        match st.fault {
            NetworkFault::CloseOnConnect => return Some(None),
            NetworkFault::MissingOnConnect => {
                return Some(Some(("404 Not Found", format!(r#"{{"message":"network {id} not found"}}"#))))
            }
            _ => {}
        }
        let Some((name, _)) =
            st.networks.iter().find(|(_, n)| n.id == id).map(|(k, n)| (k.clone(), n.clone()))
        else {
            return Some(Some(("404 Not Found", format!(r#"{{"message":"network {id} not found"}}"#))));
        };
        let cid = req["Container"].as_str().unwrap_or("").to_string();
        let ip = req["EndpointConfig"]["IPAMConfig"]["IPv4Address"].as_str().unwrap_or("").to_string();
        let Some(c) = st.containers.get_mut(&cid) else {
            return Some(Some(("404 Not Found", format!(r#"{{"message":"No such container: {cid}"}}"#))));
        };
        let c2 = c.clone().net(&name, &ip, "");
        *c = c2;
        drop(st);
        let line = json!({"Type": "network", "Action": "connect", "Actor": {"ID": id, "Attributes": {"container": cid, "name": name}}});
        send_to_subscribers(state, format!("{line}\n"));
        return Some(Some(("200 OK", String::new())));
    }
    None
}

fn send_to_subscribers(state: &Arc<Mutex<State>>, line: String) {
    let chunk = format!("{:x}\r\n{line}\r\n", line.len()).into_bytes();
    state.lock().unwrap().subscribers.retain(|s| s.send(chunk.clone()).is_ok());
}
