//! rtnetlink decoding against bytes captured from a real kernel (tests/fixtures/rtnetlink/).
//!
//! Regenerate the fixtures as root with
//! `cargo test --test rtnetlink_fixtures -- --ignored capture_fixtures`: it builds a namespace
//! with a veth pair and documentation addresses, then records a link dump, an address dump and
//! the multicast events of a scripted sequence of changes.

use netmgrd::wire::rtnetlink::{dump_request, parse, DumpKind, ParseError, RtnlMessage};
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rtnetlink").join(name)
}

fn decoded(name: &str) -> Vec<RtnlMessage> {
    parse(&fixture(name)).into_iter().map(|m| m.unwrap_or_else(|e| panic!("{name}: {e}"))).collect()
}

#[test]
fn link_dump() {
    let msgs = decoded("links_dump.bin");
    let links: Vec<_> =
        msgs.iter().filter_map(|m| if let RtnlMessage::Link(l) = m { Some(l) } else { None }).collect();
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["lo", "cap0p", "cap0"]);
    assert!(links.iter().all(|l| l.up));
    assert!(matches!(msgs.last(), Some(RtnlMessage::Done { seq: 1 })));
}

#[test]
fn address_dump() {
    let msgs = decoded("addrs_dump.bin");
    let links = decoded("links_dump.bin");
    let cap0 = links
        .iter()
        .find_map(|m| match m {
            RtnlMessage::Link(l) if l.name == "cap0" => Some(l.index),
            _ => None,
        })
        .unwrap();
    let addrs: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            RtnlMessage::AddrNew(a) if a.index == cap0 => Some(format!("{} scope {}", a.prefix, a.scope)),
            _ => None,
        })
        .collect();
    assert!(addrs.contains(&"192.0.2.1/24 scope 0".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"203.0.113.1/24 scope 200".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"2001:db8::1/64 scope 0".to_string()), "{addrs:?}");
    assert!(addrs.iter().any(|a| a.starts_with("fe80::") && a.ends_with("scope 253")), "{addrs:?}");
    assert!(matches!(msgs.last(), Some(RtnlMessage::Done { seq: 2 })));
}

#[test]
fn multicast_events_in_order() {
    let msgs = decoded("events.bin");
    let summary: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            RtnlMessage::AddrNew(a) if !a.prefix.addr.to_string().starts_with("fe80") => {
                Some(format!("+{}", a.prefix))
            }
            RtnlMessage::AddrGone(a) if !a.prefix.addr.to_string().starts_with("fe80") => {
                Some(format!("-{}", a.prefix))
            }
            RtnlMessage::Link(l) if l.name == "cap0" => {
                Some(format!("link {} {}", l.name, if l.up { "up" } else { "down" }))
            }
            RtnlMessage::LinkGone { .. } => Some("link gone".to_string()),
            _ => None,
        })
        .collect();
    let pos =
        |s: &str| summary.iter().position(|x| x == s).unwrap_or_else(|| panic!("{s} not in {summary:?}"));
    assert!(pos("+198.51.100.7/24") < pos("-198.51.100.7/24"));
    assert!(pos("+2001:db8:1::7/64") < pos("link cap0 down"));
    assert!(pos("link cap0 down") < pos("link gone"));
    // Deleting the link reports its addresses gone as well.
    assert!(summary.contains(&"-192.0.2.1/24".to_string()), "{summary:?}");
}

#[test]
fn every_truncation_of_real_bytes_is_an_error_not_a_panic() {
    for name in ["links_dump.bin", "addrs_dump.bin", "events.bin"] {
        let bytes = fixture(name);
        for cut in 0..bytes.len() {
            let out = parse(&bytes[..cut]);
            if cut % 4 != 0 {
                assert!(
                    out.iter().any(|m| matches!(m, Err(ParseError::Truncated { .. }))) || out.is_empty(),
                    "{name} cut at {cut}"
                );
            }
        }
        // Flipped bytes: decoding may fail per message, never panic.
        let mut flipped = bytes.clone();
        for i in (16..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        let _ = parse(&flipped);
    }
}

/// Records the fixtures; run by hand as root (see the module doc).
#[test]
#[ignore]
fn capture_fixtures() {
    let ns = format!("nmcap-{}", std::process::id());
    let run = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
    run(&["netns", "add", &ns]);
    let script = "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && \
        ip link set lo up && ip link add cap0 type veth peer name cap0p && ip link set cap0 up && \
        ip link set cap0p up && ip addr add 192.0.2.1/24 dev cap0 && \
        ip addr add 203.0.113.1/24 scope site dev cap0 && ip -6 addr add 2001:db8::1/64 dev cap0";
    run(&["netns", "exec", &ns, "sh", "-c", script]);
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "capture_inner", "--nocapture"])
        .env("NETMGRD_CAPTURE", "1")
        .status()
        .unwrap();
    run(&["netns", "del", &ns]);
    assert!(status.success());
}

#[test]
#[ignore]
fn capture_inner() {
    use neli::consts::socket::{Msg, NlFamily};
    use neli::socket::NlSocket;
    use neli::utils::Groups;
    if std::env::var_os("NETMGRD_CAPTURE").is_none() {
        return;
    }
    let mut buf = vec![0u8; 65536];
    let dump = NlSocket::connect(NlFamily::Route, None, Groups::empty()).unwrap();
    for (kind, seq, file) in
        [(DumpKind::Links, 1, "links_dump.bin"), (DumpKind::Addresses, 2, "addrs_dump.bin")]
    {
        dump.send(dump_request(kind, seq), Msg::empty()).unwrap();
        let mut out = Vec::new();
        loop {
            let (n, _) = dump.recv(&mut buf[..], Msg::empty()).unwrap();
            out.extend_from_slice(&buf[..n]);
            if parse(&buf[..n]).iter().any(|m| matches!(m, Ok(RtnlMessage::Done { .. }))) {
                break;
            }
        }
        std::fs::write(fixture_path(file), out).unwrap();
    }
    let mcast = NlSocket::connect(NlFamily::Route, None, Groups::new_bitmask(0x1 | 0x10 | 0x100)).unwrap();
    let script = "ip addr add 198.51.100.7/24 dev cap0 && ip addr del 198.51.100.7/24 dev cap0 && \
        ip -6 addr add 2001:db8:1::7/64 dev cap0 && ip link set cap0 down && ip link del cap0";
    assert!(Command::new("sh").args(["-c", script]).status().unwrap().success());
    mcast.nonblock().unwrap();
    let mut out = Vec::new();
    while let Ok((n, _)) = mcast.recv(&mut buf[..], Msg::empty()) {
        out.extend_from_slice(&buf[..n]);
    }
    std::fs::write(fixture_path("events.bin"), out).unwrap();
}
