#!/usr/bin/env bash
# `make demo`: netmgrd in a throwaway network namespace with the example ruleset and config.
# Adds and removes addresses, shows the sets and `netmgrd ctl status`, then cleans up.
# Nothing outside the namespace is touched.
set -euo pipefail
BIN=$(realpath "${1:-target/release/netmgrd}")
cd "$(dirname "$0")/.."
NS="netmgrd-demo-$$"
DIR=$(mktemp -d)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT
in_ns() { ip netns exec "$NS" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # wait_for SECONDS COMMAND...: retry until it succeeds or time runs out
	local end=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $end ] && { echo "timed out waiting for: $*"; return 1; }
		sleep 0.05
	done
}
show_sets() { for s in wan_ips wan_ipv6 lan_ips lan_nets; do in_ns nft list set inet filter $s | grep -E 'set|elements' || true; done; }

step "namespace $NS with eth0 (wan) and eth1 (lan) as veth pairs, ruleset config/nftables.conf"
ip netns add "$NS"
in_ns ip link set lo up
in_ns ip link add eth0 type veth peer name eth0-peer
in_ns ip link add eth1 type veth peer name eth1-peer
for l in eth0 eth0-peer eth1 eth1-peer; do in_ns ip link set "$l" up; done
in_ns nft -f config/nftables.conf
in_ns ip addr add 198.51.100.2/24 dev eth0   # present before netmgrd starts

step "netmgrd run --config config/config.yaml"
ip netns exec "$NS" "$BIN" run --config config/config.yaml --socket "$DIR/netmgrd.sock" --log-target stderr &
PID=$!
wait_for 5 "$BIN" ctl --socket "$DIR/netmgrd.sock" ping
wait_for 5 sh -c "ip netns exec $NS nft list set inet filter wan_ips | grep -q 198.51.100.2"
show_sets

step "add 203.0.113.10/24 + 2001:db8::10/64 to eth0, 192.0.2.1/24 to eth1"
in_ns ip addr add 203.0.113.10/24 dev eth0
in_ns ip -6 addr add 2001:db8::10/64 dev eth0 nodad
in_ns ip addr add 192.0.2.1/24 dev eth1
wait_for 5 sh -c "ip netns exec $NS nft list set inet filter lan_nets | grep -q 192.0.2.0/24"
wait_for 5 sh -c "ip netns exec $NS nft list set inet filter wan_ipv6 | grep -q 2001:db8::10"
show_sets

step "netmgrd ctl status"
"$BIN" ctl --socket "$DIR/netmgrd.sock" status

step "remove 203.0.113.10 and 2001:db8::10 from eth0"
in_ns ip addr del 203.0.113.10/24 dev eth0
in_ns ip -6 addr del 2001:db8::10/64 dev eth0
wait_for 5 sh -c "! ip netns exec $NS nft list set inet filter wan_ips | grep -q 203.0.113.10"
show_sets

step "SIGTERM"
kill -TERM "$PID"
status=0; wait "$PID" || status=$?; echo "netmgrd exited with status $status"
PID=
