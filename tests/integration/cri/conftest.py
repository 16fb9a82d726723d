"""Fixtures of the CRI lane: crictl and critest built from the vendored cri-tools
source, the stand-in images, and a node (containerd with the CRI plugin, CNI, a
registry; tests/helpers/cri.py) per test module."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cri import CriNode, build_cri_tools, missing_tools
from helpers.cri_images import build_layout, find_busybox

TOMATO_RUNTIME = Path(sys.executable).parent / "tomato-runtime"

# tomato-runtime killed with SIGKILL in the middle of one `create`, the next one
# after the test creates the marker file: once the runtime has recorded the
# container (its state directory exists), before it returns to the shim.
KILLED_WRAPPER = """#!/bin/sh
marker={marker}
case " $* " in
*" create "*)
    if mv "$marker" "$marker.taken" 2>/dev/null; then
        root=; prev=; id=
        for a; do [ "$prev" = --root ] && root=$a; prev=$a; id=$a; done
        {runtime} "$@" &
        pid=$!
        i=0
        while [ $i -lt 500 ] && [ ! -e "$root/$id" ]; do sleep 0.01; i=$((i+1)); done
        kill -9 $pid
        wait $pid
        exit 137
    fi;;
esac
exec {runtime} "$@"
"""


@pytest.fixture(scope="session")
def cri_tools() -> Path:
    missing = missing_tools()
    if missing:
        pytest.skip(f"the CRI lane needs {', '.join(missing)} (apt-get install containerd "
                    "containernetworking-plugins docker-registry skopeo umoci runc iptables)")
    tools, why = build_cri_tools()
    if tools is None:
        pytest.skip(f"the CRI lane needs crictl and critest: {why}")
    return tools


@pytest.fixture(scope="session")
def cri_layout(storage: Path, cri_tools: Path) -> Path:
    return build_layout(storage / "cri-images", find_busybox(cri_tools.parent))


@pytest.fixture(scope="module")
def node(storage: Path, cri_layout: Path, cri_tools: Path) -> Iterator[CriNode]:
    """A node with the runc, tomato and tomato-killed runtime handlers."""
    runc = shutil.which("runc")
    assert runc is not None  # missing_tools checked it
    # A short directory: containerd refuses unix socket paths over 104 bytes.
    base = Path(tempfile.mkdtemp(prefix="cri-", dir=storage))
    base.chmod(0o755)
    wrapper = base / "tomato-killed"
    wrapper.write_text(KILLED_WRAPPER.format(marker=base / "kill-next-create",
                                             runtime=TOMATO_RUNTIME))
    wrapper.chmod(0o755)
    node = CriNode(base / "node", cri_layout, cri_tools,
                   {"runc": runc, "tomato": str(TOMATO_RUNTIME), "tomato-killed": str(wrapper)})
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)
    if node.forced:
        pytest.fail("the CRI node's teardown had to clean up: " + "; ".join(node.forced[:5]))
