#!/bin/sh
# Builds a fully static netmgrd (musl; no NEEDED, no INTERP) for ARCH into
# target/TRIPLE/release/netmgrd: the sysroot with static libmnl/libnftnl first
# (scripts/build-sysroot.sh, reused when present), then cargo with pkg-config pointed at it.
#
#   NFT_SOURCES=DIR scripts/build-static.sh x86_64|aarch64|armv7
#
# x86_64: musl-gcc and the stable toolchain. aarch64: `zig cc` as linker, stable toolchain
# (`rustup target add aarch64-unknown-linux-musl`). armv7: `zig cc`, nightly with
# `-Z build-std` (its rust-std is not downloadable here).
set -eu

ARCH=${1:?usage: build-static.sh x86_64|aarch64|armv7}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SR=$ROOT/target/sysroot/$ARCH
TOOLCHAIN=
BUILD_STD=
case "$ARCH" in
    x86_64) TRIPLE=x86_64-unknown-linux-musl ;;
    aarch64) TRIPLE=aarch64-unknown-linux-musl ;;
    armv7)
        TRIPLE=armv7-unknown-linux-musleabihf
        TOOLCHAIN=+nightly
        BUILD_STD=-Zbuild-std=std,panic_abort
        ;;
    *)
        echo "unknown ARCH $ARCH (x86_64, aarch64 or armv7)" >&2
        exit 2
        ;;
esac

"$ROOT/scripts/build-sysroot.sh" "$ARCH" "$SR"
if [ -n "$BUILD_STD" ] && command -v rustup >/dev/null; then
    rustup component add rust-src --toolchain nightly
fi
if [ -z "$TOOLCHAIN" ] && command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TRIPLE"; then
    rustup target add "$TRIPLE"
fi

export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_ALL_STATIC=1
export PKG_CONFIG_SYSROOT_DIR="$SR" PKG_CONFIG_LIBDIR="$SR/usr/lib/pkgconfig"
VAR=$(echo "$TRIPLE" | tr 'a-z-' 'A-Z_')
if [ "$ARCH" != x86_64 ]; then
    # zig links: its own musl crt and libc, not Rust's self-contained copies.
    export "CARGO_TARGET_${VAR}_LINKER=$SR/bin/cc"
    export "CARGO_TARGET_${VAR}_RUSTFLAGS=-C link-self-contained=no"
fi
cd "$ROOT"
# shellcheck disable=SC2086 # TOOLCHAIN and BUILD_STD are empty or one word each
cargo $TOOLCHAIN build --release --target "$TRIPLE" $BUILD_STD

BIN=$ROOT/target/$TRIPLE/release/netmgrd
if readelf -d "$BIN" 2>/dev/null | grep -q NEEDED || readelf -l "$BIN" | grep -q INTERP; then
    echo "$BIN is not static:" >&2
    readelf -d "$BIN" >&2
    exit 1
fi
echo "$BIN: $(wc -c < "$BIN") bytes, static"
