#!/bin/sh
# Install what Tomato needs on a Debian/Ubuntu machine, as root, and the
# project itself.  Idempotent: a second run only checks (and reinstalls the package).
#   scripts/install.sh            the development install: this tree's .venv (editable)
#   scripts/install.sh --system [--prefix DIR] [--bin-dir DIR]
#                                 for every user of the machine: a venv at DIR (default
#                                 /opt/tomato) made with the system's python3, the package
#                                 installed into it (not editable: the sources may live
#                                 where others cannot read), tomato and tomato-runtime
#                                 linked into --bin-dir (default /usr/local/bin), and the
#                                 rootless engine's helpers (uidmap, slirp4netns).
#   TOMATO_APT_EXTRA="pkg ..."   more packages (the test suite adds its peers)
set -eu
cd "$(dirname "$0")/.."

usage() { echo "usage: install.sh [--system [--prefix DIR] [--bin-dir DIR]]" >&2; exit 2; }
system=0 prefix=/opt/tomato bindir=/usr/local/bin
while [ $# -gt 0 ]; do
    case "$1" in
        --system) system=1 ;;
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift ;;
        --prefix=*) prefix=${1#*=} ;;
        --bin-dir) [ $# -ge 2 ] || usage; bindir=$2; shift ;;
        --bin-dir=*) bindir=${1#*=} ;;
        *) usage ;;
    esac
    shift
done

need_root() { [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }; }
need_root

PKGS="busybox-static python3 python3-venv libseccomp2 iproute2 util-linux gcc libc6-dev ${TOMATO_APT_EXTRA:-}"
[ "$system" = 0 ] || PKGS="$PKGS uidmap slirp4netns"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install.sh: apt-get install$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$system" = 1 ]; then
    exec scripts/install-system.sh "$prefix" "$bindir"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The package's build step (setup.py) builds the C programs into .venv/bin, as it
# does for `pip install .`: tomato-shim (the steady state of each container's
# monitor: a Python process would cost ~3-5 MB per container), tomato-client (the
# CLI through its fork server; `tomato` is the client itself, the Python launcher
# beside it is tomato-launcher) and tomato-runtime-front.
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev,lab]"
if command -v cc >/dev/null 2>&1; then
    # tomato-runtime-front: the runtime's state/start/kill/delete/pause/resume/list
    # without Python (src/tomato/runtime/front/main.c), the launcher's interpreter.
    if cc -O2 -Wall -o .venv/bin/tomato-runtime-front.new src/tomato/runtime/front/*.c \
            && mv .venv/bin/tomato-runtime-front.new .venv/bin/tomato-runtime-front; then
        sed -i "1s|^#!.*|#!$PWD/.venv/bin/tomato-runtime-front|" .venv/bin/tomato-runtime
    fi
else
    echo "install.sh: no C compiler: containers' monitors stay in Python" >&2
fi
# tomato-dmz (the container's last execve: runtime/dmz_exec.py) also beside its source,
# for a runtime run from the source tree (the cgroup v2 guest runs python3 -m ...).
if [ -x .venv/bin/tomato-dmz ]; then
    install -m 0755 .venv/bin/tomato-dmz src/tomato/runtime/dmz/tomato-dmz
fi
# Byte-compile now: the runtime's start path must not pay for compiling
# (and some environments set PYTHONDONTWRITEBYTECODE).
.venv/bin/python -m compileall -q src >/dev/null
