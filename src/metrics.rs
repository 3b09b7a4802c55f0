//! Counters for `netmgrd ctl metrics`, in Prometheus' text format, for node-exporter's
//! textfile collector (or prometheus-node-exporter-lua on OpenWrt). Pure: the daemon counts,
//! this renders.

use std::fmt::Write;
use std::time::Duration;

/// Upper bounds (seconds) of the event-to-commit latency histogram.
const BUCKETS: [f64; 9] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub elements_added: u64,
    pub elements_removed: u64,
    /// Time from the loop waking with events to the kernel accepting their batch.
    latency_counts: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
}

impl Metrics {
    pub fn observe_commit(&mut self, latency: Duration, added: usize, removed: usize) {
        self.elements_added += added as u64;
        self.elements_removed += removed as u64;
        let s = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.latency_counts[i] += 1;
            }
        }
        self.latency_sum += s;
        self.latency_count += 1;
    }
}

/// What the text shows besides the counters kept here.
pub struct Snapshot<'a> {
    pub batches: u64,
    pub reloads: u64,
    pub repairs: u64,
    pub docker_reconnects: u64,
    /// (set, element count, healthy)
    pub sets: Vec<(String, usize, bool)>,
    pub metrics: &'a Metrics,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP netmgrd_{name} {help}\n# TYPE netmgrd_{name} counter\nnetmgrd_{name} {value}"
        );
    };
    counter("nft_batches_total", "nftables transactions sent.", s.batches);
    counter("elements_added_total", "Set elements added.", s.metrics.elements_added);
    counter("elements_removed_total", "Set elements removed.", s.metrics.elements_removed);
    counter("foreign_repairs_total", "Foreign nftables changes repaired.", s.repairs);
    counter("reloads_total", "Config reloads.", s.reloads);
    counter("docker_reconnects_total", "Docker Engine reconnects.", s.docker_reconnects);
    let _ = writeln!(
        out,
        "# HELP netmgrd_set_elements Elements of each managed set.\n# TYPE netmgrd_set_elements gauge"
    );
    for (set, n, _) in &s.sets {
        let _ = writeln!(out, "netmgrd_set_elements{{set=\"{}\"}} {n}", label(set));
    }
    let _ = writeln!(
        out,
        "# HELP netmgrd_set_error 1 while a managed set cannot be used.\n# TYPE netmgrd_set_error gauge"
    );
    for (set, _, healthy) in &s.sets {
        let _ = writeln!(out, "netmgrd_set_error{{set=\"{}\"}} {}", label(set), u8::from(!healthy));
    }
    let m = s.metrics;
    let _ = writeln!(
        out,
        "# HELP netmgrd_event_to_commit_seconds From the loop waking with events to their batch committed.\n# TYPE netmgrd_event_to_commit_seconds histogram"
    );
    for (bound, count) in BUCKETS.iter().zip(m.latency_counts) {
        let _ = writeln!(out, "netmgrd_event_to_commit_seconds_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "netmgrd_event_to_commit_seconds_bucket{{le=\"+Inf\"}} {}", m.latency_count);
    let _ = writeln!(out, "netmgrd_event_to_commit_seconds_sum {}", m.latency_sum);
    let _ = writeln!(out, "netmgrd_event_to_commit_seconds_count {}", m.latency_count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let mut m = Metrics::default();
        m.observe_commit(Duration::from_micros(80), 2, 0);
        m.observe_commit(Duration::from_millis(3), 0, 1);
        let text = render(&Snapshot {
            batches: 5,
            reloads: 1,
            repairs: 2,
            docker_reconnects: 0,
            sets: vec![("inet filter wan_ips".into(), 2, true), ("inet filter \"x\"".into(), 0, false)],
            metrics: &m,
        });
        assert!(text.contains("# TYPE netmgrd_nft_batches_total counter\nnetmgrd_nft_batches_total 5\n"));
        assert!(text.contains("netmgrd_elements_added_total 2\n"));
        assert!(text.contains("netmgrd_set_elements{set=\"inet filter wan_ips\"} 2\n"));
        assert!(text.contains("netmgrd_set_error{set=\"inet filter \\\"x\\\"\"} 1\n"));
        assert!(text.contains("netmgrd_event_to_commit_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("netmgrd_event_to_commit_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("netmgrd_event_to_commit_seconds_count 2\n"));
    }
}
