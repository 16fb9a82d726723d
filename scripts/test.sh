#!/bin/sh
# The whole test suite, as root, on a fresh Debian/Ubuntu machine: installs
# the packages the tests drive (the peers runc/crun/containerd, a registry,
# skopeo/umoci, stress, qemu for the cgroup v2 lane, Go and the CNI plugins for
# the CRI lane), the venv, builds crictl and critest once from the vendored
# cri-tools source (tools/cri/build-cri-tools.sh; without that source the CRI
# lane's tests skip, saying why), then
#   1. the cgroup v2 lane: the cgroup tests inside a guest booted on a pure
#      cgroup2 hierarchy (tools/cgroup2-vm/run.sh; ~4 minutes with its systemd phase),
#   2. pytest on this machine (cgroup v1 hybrid), the CRI lane included
#      (tests/integration/cri: critest for the runc and tomato handlers, ~4 minutes).
#   3. the unit tests on the other supported Pythons, 3.12 and 3.13 (a venv each,
#      .venv-3.1x, with pytest only; the sources from src/; ~20 s each).
# pytest arguments may be given (scripts/test.sh -k lifecycle); then, or with
# TOMATO_SKIP_VM=1, the guest lane is skipped, and the other Pythons' lane too
# (or with TOMATO_SKIP_PYTHONS=1).
set -eu
cd "$(dirname "$0")/.."
TOMATO_APT_EXTRA="runc crun containerd skopeo umoci docker-registry stress nftables iptables \
uidmap slirp4netns procps psmisc tmux curl tini podman qemu-system-x86 mmdebstrap linux-image-amd64 cpio \
docker-compose golang-go containernetworking-plugins \
kmod make ${TOMATO_APT_EXTRA:-}" ./scripts/install.sh
tools/cri/build-cri-tools.sh >/dev/null || echo "test.sh: no crictl/critest: the CRI lane's tests skip" >&2
vm=0
if [ $# -eq 0 ] && [ -z "${TOMATO_SKIP_VM:-}" ]; then
    echo "== cgroup v2 lane (a guest on a pure cgroup2 hierarchy) ==" >&2
    tools/cgroup2-vm/run.sh test || vm=$?
    echo "== this machine (cgroup v1 hybrid) ==" >&2
fi
rc=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || rc=$?
pythons=0
if [ $# -eq 0 ] && [ -z "${TOMATO_SKIP_PYTHONS:-}" ]; then
    for v in 3.12 3.13; do
        py=$(ls -d "$HOME"/.pyenv/versions/"$v".*/bin/python 2>/dev/null | tail -n 1)
        [ -n "$py" ] || py=$(command -v "python$v" || true)
        if [ -z "$py" ]; then
            echo "test.sh: no Python $v here: its unit tests are skipped" >&2
            continue
        fi
        [ -x ".venv-$v/bin/python" ] || "$py" -m venv ".venv-$v"
        ".venv-$v/bin/python" -c "import pytest" 2>/dev/null \
            || ".venv-$v/bin/pip" install -q --disable-pip-version-check pytest
        echo "== unit tests on Python $v ==" >&2
        PYTHONPATH=src ".venv-$v/bin/python" -m pytest -p no:cacheprovider -q tests/unit \
            || pythons=$?
    done
fi
if [ "$pythons" -ne 0 ]; then
    echo "test.sh: the unit tests failed on another Python (exit $pythons)" >&2
    [ "$rc" -ne 0 ] || rc=$pythons
fi
if [ "$vm" -ne 0 ]; then
    echo "test.sh: the cgroup v2 lane failed (exit $vm)" >&2
    [ "$rc" -ne 0 ] || rc=$vm
fi
exit "$rc"
