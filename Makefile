# netmgrd: build, test, demo, bench, install.
PREFIX ?= /usr
DESTDIR ?=
# openwrt | openrc | systemd | none; detected when empty.
INIT ?=
CARGO ?= cargo
BIN := target/release/netmgrd
APT_PACKAGES := libnftnl-dev libmnl-dev pkg-config nftables iproute2 socat busybox-static procps shellcheck

.PHONY: all build test lint deps static-deps static cross demo bench fuzz install clean

all: build

build:
	$(CARGO) build --release

# Installs the system packages the build and the tests need (Debian/Ubuntu, as root).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust >= 1.85 (rustup)"; exit 1; }

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# The whole suite: formatting, lints, unit and golden tests, then the integration tests,
# which need root (network namespaces) and are `#[ignore]`d so a run without root reports
# them as ignored, never as passed. `capture_*` rewrite fixtures (by hand only); `real_*`
# need the machine's Docker Engine and run when `docker info` answers.
ROOT_TESTS := $(CARGO) test -- --ignored --skip capture_ --skip real_
test: deps lint
	$(CARGO) test
	@if [ "$$(id -u)" = 0 ]; then $(ROOT_TESTS); \
	else echo "SKIPPED: integration tests (need root: sudo make test)"; fi
	@if docker info >/dev/null 2>&1; then \
		$(CARGO) test --test real_docker -- --ignored; \
	else echo "SKIPPED: real Docker Engine test (no dockerd answers here)"; fi

demo: deps build
	bash tests/demo.sh $(BIN)

bench: deps build
	NETMGRD_BIN=$(CURDIR)/$(BIN) $(CARGO) bench --bench netmgrd

# Static musl builds. The upstream libmnl/libnftnl release tarballs and their SHA256SUMS are
# looked for in NFT_SOURCES (this repository's CI: ../shared/third_party).
NFT_SOURCES ?= ../shared/third_party
TARGET ?= aarch64
STATIC_APT := musl-tools autoconf automake libtool pkgconf file binutils
static-deps:
	@missing=""; for p in $(STATIC_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi
	@python3 -c "import ziglang" 2>/dev/null || python3 -m pip install ziglang

# target/x86_64-unknown-linux-musl/release/netmgrd
static: static-deps
	NFT_SOURCES=$(NFT_SOURCES) scripts/build-static.sh x86_64

# TARGET=aarch64 -> target/aarch64-unknown-linux-musl/release/netmgrd;
# TARGET=armv7 -> target/armv7-unknown-linux-musleabihf/release/netmgrd (nightly build-std)
cross: static-deps
	NFT_SOURCES=$(NFT_SOURCES) scripts/build-static.sh $(TARGET)

# Fuzzes every parser that meets outside bytes for FUZZ_SECONDS each (libFuzzer, nightly,
# cargo-fuzz). New corpus entries land in fuzz/corpus/TARGET; a crash or a hang (> 1 s per
# input) stops with its input in fuzz/artifacts/TARGET: copy it to fuzz/regressions/TARGET,
# fix it, and `make test` replays it on stable from then on.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := config control_line http_response docker_json rtnetlink nft_monitor inotify_events journal_lines route
fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t artifacts/$$t && \
		$(CARGO) +nightly fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=1 \
			-rss_limit_mb=2048 -artifact_prefix=artifacts/$$t/ -print_final_stats=1 || exit 1; \
	done

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/netmgrd
	@if [ ! -e $(DESTDIR)/etc/netmgrd/config.yaml ]; then \
		install -D -m 0644 config/default.yaml $(DESTDIR)/etc/netmgrd/config.yaml; fi
	install -D -m 0644 config/config.yaml $(DESTDIR)$(PREFIX)/share/netmgrd/config.example.yaml
	install -D -m 0644 config/nftables.conf $(DESTDIR)$(PREFIX)/share/netmgrd/nftables.conf
	@init="$(INIT)"; \
	if [ -z "$$init" ]; then \
		if [ -f /etc/openwrt_release ]; then init=openwrt; \
		elif [ -x /sbin/openrc-run ]; then init=openrc; \
		elif [ -d /run/systemd/system ] || command -v systemctl >/dev/null 2>&1; then init=systemd; \
		else init=none; fi; \
	fi; \
	echo "init system: $$init"; \
	case "$$init" in \
	openwrt) install -D -m 0755 initscripts/openwrt/netmgrd $(DESTDIR)/etc/init.d/netmgrd ;; \
	openrc) install -D -m 0755 initscripts/alpine/netmgrd $(DESTDIR)/etc/init.d/netmgrd; \
		install -D -m 0644 initscripts/alpine/netmgrd.confd $(DESTDIR)/etc/conf.d/netmgrd ;; \
	systemd) install -D -m 0644 initscripts/systemd/netmgrd.service $(DESTDIR)/lib/systemd/system/netmgrd.service ;; \
	none) ;; \
	*) echo "unknown INIT=$$init (openwrt, openrc, systemd, none)"; exit 1 ;; \
	esac

clean:
	$(CARGO) clean
