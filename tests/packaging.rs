//! The packaging data (no OpenWrt SDK or abuild here): shellcheck on every shell script, the
//! APKBUILD sourced by `sh` and its variables read, the OpenWrt feed Makefile's fields, and
//! the OpenWrt defaults (fw4 set declarations + config) run for real in a namespace.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let scripts = [
        "initscripts/openwrt/netmgrd",
        "initscripts/alpine/netmgrd",
        "scripts/build-sysroot.sh",
        "scripts/build-static.sh",
        "packaging/alpine/APKBUILD",
    ];
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-e", "SC2034,SC2154,SC2164"])
        .args(scripts.iter().map(|s| Path::new(ROOT).join(s)))
        .output()
        .expect("shellcheck is installed by `make deps` and CI");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn apkbuild_declares_what_abuild_needs() {
    let script = format!(
        ". {ROOT}/packaging/alpine/APKBUILD && printf '%s\\n' \"$pkgname\" \"$pkgver\" \"$license\" \"$subpackages\" \"$makedepends\" && for f in prepare build check package; do type $f >/dev/null || echo missing-$f; done"
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "netmgrd");
    assert_eq!(lines[1], version(), "pkgver follows Cargo.toml");
    assert_eq!(lines[2], "MIT OR Apache-2.0");
    assert!(lines[3].contains("netmgrd-openrc"));
    assert!(lines[4].contains("libnftnl-dev") && lines[4].contains("libmnl-dev"));
    assert!(!text.contains("missing-"), "{text}");
    // Every repository file the package installs exists.
    let apkbuild = std::fs::read_to_string(Path::new(ROOT).join("packaging/alpine/APKBUILD")).unwrap();
    for word in
        apkbuild.split_whitespace().filter(|w| w.starts_with("initscripts/") || w.starts_with("config/"))
    {
        assert!(Path::new(ROOT).join(word).exists(), "{word}");
    }
}

#[test]
fn openwrt_makefile_follows_the_feed_conventions() {
    let dir = Path::new(ROOT).join("packaging/openwrt");
    let mk = std::fs::read_to_string(dir.join("Makefile")).unwrap();
    assert!(mk.contains(&format!("PKG_VERSION:={}\n", version())), "PKG_VERSION follows Cargo.toml");
    for needle in [
        "include ../../lang/rust/rust-package.mk",
        "PKG_BUILD_DEPENDS:=rust/host",
        "+libnftnl +libmnl",
        "$(eval $(call RustBinPackage,netmgrd))",
        "$(eval $(call BuildPackage,netmgrd))",
        "/etc/netmgrd/config.yaml\n",
        "/etc/config/netmgrd\n",
        "/usr/share/nftables.d/table-pre",
    ] {
        assert!(mk.contains(needle), "missing `{needle}`");
    }
    for file in mk.split_whitespace().filter_map(|w| w.strip_prefix("./files/")) {
        assert!(dir.join("files").join(file).exists(), "{file}");
    }
    let out = Command::new(netmgrd_bin())
        .args(["check", "--config"])
        .arg(dir.join("files/config.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// fw4 includes the package's set declarations inside `table inet fw4`; netmgrd with the
/// package's config fills them from OpenWrt's device names.
#[test]
#[ignore = "needs root (network namespaces); `make test` runs it as root"]
fn openwrt_defaults_fill_sets_in_fw4() {
    let ns = Netns::new("owrt");
    let include = Path::new(ROOT).join("packaging/openwrt/files/netmgrd-sets.nft");
    ns.nft(&format!(
        "table inet fw4 {{\n  include \"{}\"\n  chain input {{ type filter hook input priority 0; policy accept; ip daddr @wan_ips tcp dport 22 drop; }}\n}}\n",
        include.display()
    ));
    ns.veth("wan", "wanp");
    ns.veth("br-lan", "lanp");
    ns.sh("ip addr add 203.0.113.7/24 dev wan && ip addr add 192.0.2.1/24 dev br-lan");
    let config =
        std::fs::read_to_string(Path::new(ROOT).join("packaging/openwrt/files/config.yaml")).unwrap();
    let d = Daemon::start(&ns, &config);
    assert!(
        wait_until(WAIT, || ns.set_elements("inet fw4", "wan_ips") == Some(set_of(&["203.0.113.7"]))),
        "{}",
        d.log_text()
    );
    assert!(wait_until(WAIT, || ns.set_elements("inet fw4", "lan_ips") == Some(set_of(&["192.0.2.1"]))));
}
