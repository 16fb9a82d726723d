#!/bin/sh
# Run a container with no network at all: a busybox root filesystem made
# from the host's static busybox, an OCI bundle, and tomato-runtime.
# Prints what shows it is isolated: PID 1, its own hostname, its own mounts.
set -eu
cd "$(dirname "$0")/.."
./scripts/install.sh
work=$(mktemp -d /tmp/tomato-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$work" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "tests")
from helpers.rootfs import build_busybox_rootfs
from tomato.oci.defaults import default_spec
bundle = Path(sys.argv[1])
build_busybox_rootfs(bundle / "rootfs")
spec = default_spec()
spec["process"]["terminal"] = False
spec["hostname"] = "tomato-demo"
spec["process"]["args"] = ["sh", "-c",
    'echo "inside: pid $$, hostname $(hostname), $(ls /proc | grep -c "^[0-9]") processes visible"; '
    'echo "host has $(cat /hostcount) processes"']
spec["mounts"].append({"destination": "/hostcount", "type": "bind",
                       "source": str(bundle / "hostcount"), "options": ["bind", "ro"]})
(bundle / "config.json").write_text(json.dumps(spec))
PY
ls /proc | grep -c '^[0-9]' > "$work/hostcount"
.venv/bin/tomato-runtime --root "$work/state" run --bundle "$work" "demo-$$"
