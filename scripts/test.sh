#!/bin/sh
# The whole test suite, as root, on a fresh Debian/Ubuntu machine: installs
# the packages the tests drive (the peers runc/crun/containerd, a registry,
# skopeo/umoci, stress, qemu for the cgroup v2 lane, Go and the CNI plugins for
# the CRI lane), the venv, builds crictl and critest once from the vendored
# cri-tools source (tools/cri/build-cri-tools.sh; without that source the CRI
# lane's tests skip, saying why), then
#   1. the cgroup v2 lane: the cgroup tests inside a guest booted on a pure
#      cgroup2 hierarchy (tools/cgroup2-vm/run.sh; ~1-2 minutes),
#   2. pytest on this machine (cgroup v1 hybrid), the CRI lane included
#      (tests/integration/cri: critest for the runc and tomato handlers, ~4 minutes).
# pytest arguments may be given (scripts/test.sh -k lifecycle); then, or with
# TOMATO_SKIP_VM=1, the guest lane is skipped.
set -eu
cd "$(dirname "$0")/.."
TOMATO_APT_EXTRA="runc crun containerd skopeo umoci docker-registry stress nftables iptables \
uidmap procps psmisc tmux curl tini podman qemu-system-x86 mmdebstrap linux-image-amd64 cpio \
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
if [ "$vm" -ne 0 ]; then
    echo "test.sh: the cgroup v2 lane failed (exit $vm)" >&2
    [ "$rc" -ne 0 ] || rc=$vm
fi
exit "$rc"
