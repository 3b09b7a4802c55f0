//! Entry points for fuzzing every parser that meets outside bytes. `fuzz/` drives them with
//! libFuzzer (`make fuzz`, nightly); `tests/fuzz_corpus.rs` replays the corpus and every
//! crash or hang case found through the same functions on stable (`make test`). Each must
//! return, never panic, and stay linear in its input.

use crate::wire::{control, docker, http, inotify, journal, nft_monitor, route, rtnetlink};
use std::path::Path;

/// A config file: parse, validate, and plan the owned table.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = crate::config::Config::parse(Path::new("/fuzz/config.yaml"), text) {
        if let Ok(setup) = crate::setup::Setup::new(config) {
            if let Some(owned) = &setup.owned {
                let _ = owned.table.render();
            }
        }
    }
}

/// Bytes from a control client, split into reads at the first byte's value.
pub fn control_line(data: &[u8]) {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut buf = control::LineBuffer::default();
    for chunk in data.get(1..).unwrap_or_default().chunks(split) {
        buf.push(chunk);
        while let Some(line) = buf.next_line() {
            if let control::Line::Complete(l) = line {
                let _ = control::parse_request(&l);
            }
        }
    }
}

/// An HTTP/1.1 response as the Engine sends it, in reads of a size set by the first byte,
/// with the body drained as the Docker source drains the event stream.
pub fn http_response(data: &[u8]) {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut r = http::Response::new(64 * 1024);
    for chunk in data.get(1..).unwrap_or_default().chunks(split) {
        if r.feed(chunk).is_err() {
            return;
        }
        let _ = r.header("content-type");
        r.body.clear();
    }
    let _ = r.eof();
}

/// Engine JSON: every shape netmgrd decodes, fed the same bytes.
pub fn docker_json(data: &[u8]) {
    let _ = docker::negotiate(data);
    let _ = docker::parse_list(data);
    let _ = docker::parse_inspect(data);
    for line in data.split(|b| *b == b'\n') {
        let _ = docker::parse_event(line);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = docker::parse_publish_label(text);
    }
}

/// An rtnetlink datagram.
pub fn rtnetlink(data: &[u8]) {
    let _ = rtnetlink::parse(data);
}

/// An nf_tables notification datagram.
pub fn nft_monitor(data: &[u8]) {
    let _ = nft_monitor::parse(data);
}

/// inotify records from the cgroup tree watch.
pub fn inotify_events(data: &[u8]) {
    let _ = inotify::parse(data);
}

/// journalctl output in reads of varying size (the first byte picks the read size), each line
/// through the journal parser, as the journal source does.
pub fn journal_lines(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else { return };
    let mut lines = journal::Lines::default();
    for chunk in rest.chunks(usize::from(step).max(1)) {
        lines.feed(chunk, |l| {
            let _ = journal::parse_line(l);
        });
    }
}

/// A route/rule datagram (RTM_*ROUTE, RTM_*RULE, ACKs).
pub fn route(data: &[u8]) {
    let _ = route::parse(data);
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name (corpus directories are named after them).
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("control_line", control_line),
    ("http_response", http_response),
    ("docker_json", docker_json),
    ("rtnetlink", rtnetlink),
    ("nft_monitor", nft_monitor),
    ("inotify_events", inotify_events),
    ("journal_lines", journal_lines),
    ("route", route),
];
