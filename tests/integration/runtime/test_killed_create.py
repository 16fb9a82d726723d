"""Issue 13, item 6 (the runtime's part): `tomato-runtime create` killed with -9 at any
moment leaves nothing `delete --force` cannot remove -- in particular not an init
that already sits in the container's cgroup, waiting for a start that never comes
(its creator's state says "creating")."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from .rt import RUNTIME, runtime, set_args


def test_delete_force_after_create_killed_anywhere(runtime_root: Path, bundle: Path) -> None:
    set_args(bundle, "sleep", "300")
    rng = random.Random(13)
    for i in range(20):  # bounded: 20 random moments over the whole create
        cid = f"k9-{i}"
        proc = subprocess.Popen([RUNTIME, "--root", str(runtime_root), "create", "--bundle",
                                 str(bundle), cid], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.12))
        proc.kill()
        proc.wait()
        done = runtime(runtime_root, "delete", "--force", cid, check=False)
        assert done.returncode == 0 or "does not exist" in done.stderr, done.stderr
        assert not (runtime_root / cid).exists()
        listed = runtime(runtime_root, "list", "-q").stdout.split()
        assert cid not in listed
