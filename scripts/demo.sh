#!/bin/sh
# Run a container with no network at all: a root filesystem made from the
# host's own programs and the shared libraries their ELF headers name
# (`tomato rootfs from-host`, the study note's chroot chapter), an OCI bundle
# (`tomato-runtime spec`), and `tomato-runtime run`.  Prints what shows it is
# isolated: PID 1, its own hostname, only its own processes.
set -eu
cd "$(dirname "$0")/.."
./scripts/install.sh
bin=$(pwd)/.venv/bin
work=$(mktemp -d /tmp/tomato-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/tomato" rootfs from-host sh hostname ls grep cat --into "$work/rootfs" >/dev/null
ls /proc | grep -c '^[0-9]' > "$work/rootfs/host-processes"
cd "$work"
"$bin/tomato-runtime" spec
"$bin/python" - <<'PY'
import json
spec = json.load(open("config.json"))
spec["process"]["terminal"] = False
spec["hostname"] = "tomato-demo"
spec["process"]["args"] = ["sh", "-c",
    'echo "inside: pid $$, hostname $(hostname), $(ls /proc | grep -c "^[0-9]") processes visible";'
    ' echo "the host: $(cat /host-processes) processes"']
json.dump(spec, open("config.json", "w"))
PY
"$bin/tomato-runtime" --root "$work/state" run "demo-$$"
