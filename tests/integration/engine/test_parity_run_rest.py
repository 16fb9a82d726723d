"""The rest of `docker run --help` (issue 19's flag-by-flag comparison): --annotation
reaches the OCI runtime, --runtime/--isolation take dockerd's Linux values, and what a
Linux dockerd without GPUs, xfs quotas or volume plugins refuses is refused in its
words, exit 125, with nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Engine


def _refused(engine: Engine, *args: str) -> str:
    before = engine.run("ps", "-aq").stdout
    proc = engine.run("run", "--rm", *args, "busybox", "true", check=False)
    assert proc.returncode == 125, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert engine.run("ps", "-aq").stdout == before  # nothing made
    return proc.stderr.strip()


def test_annotations_reach_the_oci_config_and_inspect(engine: Engine) -> None:
    cid = engine.run("create", "--annotation", "org.example.team=tomato",
                     "--annotation", "org.example.empty", "busybox", "true").stdout.strip()
    config = Path(engine.root) / "containers" / cid / "bundle" / "config.json"
    annotations = json.loads(config.read_text())["annotations"]
    assert annotations["org.example.team"] == "tomato"
    assert annotations["org.example.empty"] == ""
    host = json.loads(engine.run("inspect", cid).stdout)[0]["HostConfig"]
    assert host["Annotations"] == {"org.example.team": "tomato", "org.example.empty": ""}
    assert host["Runtime"] == "runc"


@pytest.mark.parametrize("runtime", ["runc", "io.containerd.runc.v2"])
def test_runtime_names_dockerd_knows_run(engine: Engine, runtime: str) -> None:
    out = engine.run("run", "--rm", "--runtime", runtime, "--isolation", "default",
                     "busybox", "echo", "ran").stdout
    assert out == "ran\n"


def test_log_driver_shows_in_inspect(engine: Engine) -> None:
    cid = engine.run("create", "--log-driver", "none", "busybox", "true").stdout.strip()
    host = json.loads(engine.run("inspect", cid).stdout)[0]["HostConfig"]
    assert host["LogConfig"]["Type"] == "none"


@pytest.mark.parametrize("args, words", [
    (("--runtime", "nvidia"), "tomato: unknown or invalid runtime name: nvidia"),
    (("--isolation", "hyperv"),
     "tomato: Invalid isolation: \"hyperv\" - linux only supports 'default'"),
    (("--gpus", "all"), 'tomato: could not select device driver "" with capabilities: [[gpu]]'),
    (("--gpus", "driver=nvidia,count=1"),
     'tomato: could not select device driver "nvidia" with capabilities: [[gpu]]'),
    (("--storage-opt", "size=1G"), "tomato: --storage-opt is supported only for overlay "
                                   "over xfs with 'pquota' mount option"),
    (("--storage-opt", "size"), "tomato: invalid storage option"),
    (("--volume-driver", "flocker", "-v", "named:/d"),
     'tomato: error looking up volume plugin flocker: plugin "flocker" not found'),
    (("--volume-driver", "flocker", "--mount", "target=/d"),
     'tomato: error looking up volume plugin flocker: plugin "flocker" not found'),
    (("--kernel-memory", "lots"),
     "tomato: invalid argument \"lots\" for \"--kernel-memory\" flag: invalid size: 'lots'"),
])
def test_refused_in_dockerds_words(engine: Engine, args: tuple[str, ...], words: str) -> None:
    assert _refused(engine, *args) == words


@pytest.mark.parametrize("flag", ["--cpu-count", "--cpu-percent", "--io-maxiops",
                                  "--io-maxbandwidth"])
def test_windows_only_flags_are_the_clients_refusal(engine: Engine, flag: str) -> None:
    proc = engine.run("run", "--rm", flag, "1", "busybox", "true", check=False)
    assert (proc.returncode, proc.stderr) == (
        1, f'"{flag}" is only supported on a Docker daemon running on windows, but the '
           "Docker daemon is running on linux\n")


def test_flags_a_linux_dockerd_keeps(engine: Engine, tmp_path: Path) -> None:
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    engine.run("run", "--rm", "--volume-driver", "flocker", "-v", f"{host_dir}:/b",
               "--kernel-memory", "64m", "busybox", "sh", "-c", "echo ok > /b/f")
    assert (host_dir / "f").read_text() == "ok\n"  # a bind needs no volume plugin
