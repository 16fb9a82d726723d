#!/bin/sh
# Build crictl and critest (kubernetes-sigs/cri-tools v1.26.1) offline from the
# vendored source tarball, into a cache directory that the CRI tests, critest.sh
# and CI reuse, beside Debian's busybox package (see below).  Idempotent: a
# second run only checks.
#
#   tools/cri/build-cri-tools.sh          prints the directory holding crictl and critest
#
# Environment:
#   TOMATO_CRI_TOOLS_TARBALL  the source (default ../shared/vendor/cri-tools-v1.26.1.tar.gz
#                             beside the checkout); it carries its Go dependencies in vendor/
#   TOMATO_CRI_TOOLS_CACHE    where the binaries go (default .cache/cri-tools in the checkout)
#
# Exit 3 (and one line saying why) when the tarball or Go is missing: callers skip
# the CRI lane then.  Go 1.19 is Debian 12's golang-go; the build takes ~1.5 min on
# 2 cores and needs no network (GOPROXY=off, -mod=vendor).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
VERSION=v1.26.1
TARBALL=${TOMATO_CRI_TOOLS_TARBALL:-$PROJECT/../shared/vendor/cri-tools-$VERSION.tar.gz}
CACHE=${TOMATO_CRI_TOOLS_CACHE:-$PROJECT/.cache/cri-tools}
OUT=$CACHE/$VERSION

# Debian's busybox package (the dynamic one) for the lane's busybox images: the
# shell of busybox-static runs applets itself, so a masked /bin/ls would not show.
# Optional: without it the images use busybox-static (and critest's MaskedPaths
# spec fails for every runtime handler alike).
if [ ! -x "$CACHE/busybox/bin/busybox" ] && command -v apt-get >/dev/null 2>&1; then
    mkdir -p "$CACHE"
    deb=$(mktemp -d "$CACHE/deb.XXXXXX")
    if (cd "$deb" && apt-get download -q busybox >/dev/null 2>&1) \
            && dpkg-deb -x "$deb"/busybox_*.deb "$deb/x"; then
        rm -rf "$CACHE/busybox" && mv "$deb/x" "$CACHE/busybox"
    else
        echo "build-cri-tools: apt-get download busybox failed: the lane's images use busybox-static" >&2
    fi
    rm -rf "$deb"
fi

if [ -x "$OUT/crictl" ] && [ -x "$OUT/critest" ]; then
    echo "$OUT"
    exit 0
fi
[ -f "$TARBALL" ] || { echo "build-cri-tools: no cri-tools source at $TARBALL (set TOMATO_CRI_TOOLS_TARBALL)" >&2; exit 3; }
command -v go >/dev/null 2>&1 || { echo "build-cri-tools: no Go compiler (apt-get install golang-go)" >&2; exit 3; }

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
tar -C "$work" -xzf "$TARBALL"
src=$work/cri-tools-$VERSION
[ -d "$src/vendor" ] || { echo "build-cri-tools: $TARBALL has no vendor/ directory" >&2; exit 3; }
echo "build-cri-tools: building crictl and critest $VERSION (offline, ~1.5 min)" >&2
# Go's build cache in the build directory (removed after): nothing in ~/.cache.
export GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOCACHE="$work/go-build" GOPATH="$work/gopath"
pkg=github.com/kubernetes-sigs/cri-tools/pkg/version
ldflags="-X $pkg.Version=${VERSION#v}"
(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$work/crictl" ./cmd/crictl \
    && go test -c -trimpath -ldflags "$ldflags" -o "$work/critest" ./cmd/critest)
mkdir -p "$OUT"
mv "$work/crictl" "$work/critest" "$OUT/"
echo "$OUT"
