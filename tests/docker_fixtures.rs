//! Engine JSON and HTTP framing against bytes captured from a real dockerd 20.10
//! (tests/fixtures/docker/): version, container list, inspect, and a raw chunked /events
//! stream with its headers.

use netmgrd::inet::L4Proto as Proto;
use netmgrd::wire::docker::{self, ApiVersion, EngineEvent};
use netmgrd::wire::http::Response;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/docker/{name}", env!("CARGO_MANIFEST_DIR"))).expect(name)
}

#[test]
fn version_negotiates_to_the_engines_1_41() {
    assert_eq!(docker::negotiate(&fixture("version.json")), Ok(ApiVersion(1, 41)));
}

#[test]
fn inspect_of_a_running_container_with_published_port() {
    let c = docker::parse_inspect(&fixture("inspect_running.json")).unwrap();
    assert_eq!(c.name, "nmprobe");
    assert!(c.active);
    assert_eq!(c.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(c.networks["bridge"].ipv4.map(|a| a.to_string()).as_deref(), Some("172.17.0.2"));
    assert_eq!(c.networks["bridge"].ipv6, None);
    // 0.0.0.0 binds every IPv4 address; "::" is the IPv6 wildcard and keeps its family.
    assert_eq!(c.ports.len(), 2);
    assert!(c.ports.iter().all(|p| p.host_port == 18080 && p.container_port == 80 && p.proto == Proto::Tcp));
    assert_eq!(c.ports[0].host_ip, Some("0.0.0.0".parse().unwrap()));
    assert_eq!(c.ports[1].host_ip, Some("::".parse().unwrap()));
}

#[test]
fn container_list_is_ids() {
    let ids = docker::parse_list(&fixture("containers.json")).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].len(), 64);
}

fn decode_stream(bytes: &[u8], step: usize) -> Vec<EngineEvent> {
    let mut r = Response::new(1 << 20);
    let mut line = Vec::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(step) {
        r.feed(piece).unwrap();
        line.extend(std::mem::take(&mut r.body));
        while let Some(pos) = line.iter().position(|b| *b == b'\n') {
            let l: Vec<u8> = line.drain(..=pos).collect();
            out.push(docker::parse_event(&l[..l.len() - 1]).unwrap());
        }
    }
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    out
}

#[test]
fn captured_event_stream_decodes_the_same_at_every_split() {
    let raw = fixture("events_stream.http");
    let reference = decode_stream(&raw, raw.len());
    let id = "1596b9384421ec624115a94450be77da01679c09f87e30fdb4e3a9ea54d5f308".to_string();
    // network create (ignored), connect, pause, unpause, disconnect, kill/die/stop,
    // network disconnect from bridge, destroy, network destroy.
    assert!(reference.contains(&EngineEvent::Inspect(id.clone())));
    assert!(reference.contains(&EngineEvent::Gone(id.clone())));
    let first_gone = reference.iter().position(|e| *e == EngineEvent::Gone(id.clone())).unwrap();
    assert_eq!(reference[first_gone - 1], EngineEvent::Inspect(id.clone()), "connect precedes pause");
    for step in [1, 2, 3, 7, 64, 333] {
        assert_eq!(decode_stream(&raw, step), reference, "split every {step} bytes");
    }
}
