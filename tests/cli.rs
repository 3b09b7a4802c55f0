//! The command line without a daemon: check, version, usage errors, ctl with nobody there.

mod common;

use std::process::Command;

fn netmgrd(args: &[&str]) -> std::process::Output {
    Command::new(common::netmgrd_bin()).args(args).output().expect("run netmgrd")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netmgrd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_accepts_valid_and_locates_errors() {
    let good = temp_file("good.yaml", "interfaces:\n  - { name: eth0, dhcp: true, nftables_zone: wan }\n");
    let out = netmgrd(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let bad = temp_file("bad.yaml", "interfaces:\n  - name: eth0\n    dhcp: perhaps\n");
    let out = netmgrd(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("{}:3:11: ", bad.display())), "{err}");

    let out = Command::new(common::netmgrd_bin())
        .arg("check")
        .env("NETMGRD_CONFIG", &bad)
        .env("RUST_NETWORK_MGR_CONFIG", &good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "NETMGRD_CONFIG wins over RUST_NETWORK_MGR_CONFIG");

    let out = netmgrd(&["check", "--config", "/nonexistent/netmgrd.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/netmgrd.yaml"));
}

#[test]
fn shipped_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/config.yaml");
    let out = netmgrd(&["check", "--config", path]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// What `make install` puts in /etc: no NAT, no forwarding, no Docker, no owned table.
#[test]
fn installed_default_config_is_safe() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.yaml");
    let out = netmgrd(&["check", "--print", "--config", path]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "# netmgrd owns no table with this config\n");
    let text = std::fs::read_to_string(path).unwrap();
    for risky in ["nat:", "enable_forwarding", "docker:", "dnat", "masquerade"] {
        assert!(!text.lines().any(|l| l.trim_start().starts_with(risky)), "{risky} in the default config");
    }
}

#[test]
fn version_help_and_usage_errors() {
    let out = netmgrd(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("netmgrd "));
    let out = netmgrd(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("netmgrd ctl"));
    assert_eq!(netmgrd(&["--bogus"]).status.code(), Some(2));
    assert_eq!(netmgrd(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(netmgrd(&["ctl"]).status.code(), Some(2));
}

#[test]
fn ctl_without_daemon_fails_clearly() {
    let out = netmgrd(&["ctl", "--socket", "/nonexistent/netmgrd.sock", "ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/netmgrd.sock"));
}

/// scnpm's sample nftables.conf -> netmgrd config + sets + rules; the config passes `check`.
#[test]
fn import_scnpm_turns_commented_rules_into_sets_and_a_valid_config() {
    let sample = format!("{}/tests/fixtures/scnpm/nftables.conf", env!("CARGO_MANIFEST_DIR"));
    let out = netmgrd(&["import-scnpm", &sample]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("4 scnpm rule(s)"), "{text}");
    assert!(
        text.contains("add set inet filter vpn_whitelist_l2 { typeof socket cgroupv2 level 2; }"),
        "{text}"
    );
    assert!(text.contains(
        "add rule inet filter vpn.whitelist socket cgroupv2 level 2 @vpn_whitelist_l2 tcp dport 25 accept"
    ));
    assert_eq!(text.matches("add rule").count(), 3, "{text}");
    let (config, _) = text.split_once("# nftables").expect("two parts");
    let cfg = temp_file("scnpm.yaml", config);
    let check = netmgrd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));

    // A broken continuation is reported with file:line and exit 1.
    let broken =
        temp_file("broken.conf", "# a.service :: add rule inet filter c \\\nadd rule inet filter c accept\n");
    let out = netmgrd(&["import-scnpm", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("{}:line 2: ", broken.display())), "{err}");
    assert_eq!(netmgrd(&["import-scnpm"]).status.code(), Some(2));
}
