#!/bin/sh
# Builds static libmnl and libnftnl for a musl target into a sysroot (prefix /usr, so it can
# move), from the upstream release tarballs in $NFT_SOURCES, after checking their SHA-256.
# A sysroot that already holds both libraries is reused.
#
#   NFT_SOURCES=../shared/third_party scripts/build-sysroot.sh x86_64|aarch64|armv7 SYSROOT
#
# x86_64 uses musl-gcc (Debian musl-tools); aarch64 and armv7 use `zig cc` (PyPI ziglang).
set -eu

ARCH=${1:?usage: build-sysroot.sh x86_64|aarch64|armv7 SYSROOT}
SYSROOT=${2:?usage: build-sysroot.sh x86_64|aarch64|armv7 SYSROOT}
SRC=${NFT_SOURCES:?set NFT_SOURCES to the directory holding libmnl-1.0.4.tar.gz, libnftnl-1.2.6.tar.gz and SHA256SUMS}
MNL=libmnl-1.0.4
NFTNL=libnftnl-1.2.6

mkdir -p "$SYSROOT"
SYSROOT=$(cd "$SYSROOT" && pwd)
SRC=$(cd "$SRC" && pwd)
if [ -f "$SYSROOT/usr/lib/libmnl.a" ] && [ -f "$SYSROOT/usr/lib/libnftnl.a" ]; then
    echo "sysroot $SYSROOT: libmnl and libnftnl present, reused"
    exit 0
fi

echo "checking $SRC/SHA256SUMS"
(cd "$SRC" && sha256sum -c SHA256SUMS)

# Compiler wrappers, so autoconf and libtool see one word per tool.
BIN=$SYSROOT/bin
mkdir -p "$BIN"
zig_tool() {
    # $1: wrapper name, rest: the zig command
    name=$1
    shift
    printf '#!/bin/sh\nexec python3 -m ziglang %s "$@"\n' "$*" > "$BIN/$name"
    chmod +x "$BIN/$name"
}
case "$ARCH" in
    x86_64)
        HOST=x86_64-linux-musl
        CC=musl-gcc
        AR="ar"
        RANLIB="ranlib"
        # musl-gcc hides /usr/include; the kernel headers libmnl needs are copied in (never
        # -I/usr/include, which would pull in glibc's headers).
        mkdir -p "$SYSROOT/usr/include"
        cp -r /usr/include/linux /usr/include/asm-generic "$SYSROOT/usr/include/"
        cp -r /usr/include/x86_64-linux-gnu/asm "$SYSROOT/usr/include/"
        CPPFLAGS="-I$SYSROOT/usr/include"
        ;;
    aarch64)
        HOST=aarch64-linux-musl
        zig_tool cc cc -target aarch64-linux-musl
        zig_tool ar ar
        zig_tool ranlib ranlib
        CC=$BIN/cc AR=$BIN/ar RANLIB=$BIN/ranlib CPPFLAGS=
        ;;
    armv7)
        HOST=arm-linux-musleabihf
        # Rust's armv7-unknown-linux-musleabihf baseline.
        zig_tool cc cc -target arm-linux-musleabihf -mcpu=generic+v7a+vfp3d16+thumb2-neon-d32
        zig_tool ar ar
        zig_tool ranlib ranlib
        CC=$BIN/cc AR=$BIN/ar RANLIB=$BIN/ranlib CPPFLAGS=
        ;;
    *)
        echo "unknown ARCH $ARCH (x86_64, aarch64 or armv7)" >&2
        exit 2
        ;;
esac
export CC AR RANLIB CPPFLAGS

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for lib in $MNL $NFTNL; do
    tar -xzf "$SRC/$lib.tar.gz" -C "$WORK"
    (
        cd "$WORK/$lib"
        autoreconf -fi >/dev/null 2>&1
        PKG_CONFIG_LIBDIR=$SYSROOT/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$SYSROOT \
            ./configure --host="$HOST" --prefix=/usr --enable-static --disable-shared >/dev/null
        make -j"$(nproc)" >/dev/null
        make install DESTDIR="$SYSROOT" >/dev/null
    )
    echo "built $lib for $ARCH into $SYSROOT"
done
