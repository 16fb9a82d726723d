#!/bin/sh
# The whole test suite, as root, on a fresh Debian/Ubuntu machine: installs
# the packages the tests drive (the peers runc/crun/containerd, a registry,
# skopeo/umoci, stress, qemu for the cgroup v2 lane), the venv, then pytest.
#   pytest arguments may be given: scripts/test.sh -k lifecycle
set -eu
cd "$(dirname "$0")/.."
TOMATO_APT_EXTRA="runc crun containerd skopeo umoci docker-registry stress nftables iptables \
uidmap procps psmisc tmux curl ${TOMATO_APT_EXTRA:-}" ./scripts/install.sh
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
