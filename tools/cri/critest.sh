#!/bin/sh
# critest (the CRI validation suite) against a private containerd whose pods run on
# the given runtime handler(s) of tomato's CRI lane: runc, tomato, or runc,tomato
# (both, totals side by side).  As root, from anywhere:
#
#   sudo tools/cri/critest.sh runc,tomato
#   sudo tools/cri/critest.sh tomato -ginkgo.focus=Streaming     # critest's own flags after
#
# Builds crictl and critest once (offline, from the vendored cri-tools source; see
# build-cri-tools.sh), then runs tools/cri/lane.py: everything on a tmpfs in
# namespaces of the run's own, gone when it ends.  Reports and logs: .cache/cri-tools/runs/.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 runc|tomato|runc,tomato [CRITEST-ARGS...]" >&2; exit 2; }
"$HERE/build-cri-tools.sh" >/dev/null
exec "$PROJECT/.venv/bin/python" "$HERE/lane.py" critest "$@"
