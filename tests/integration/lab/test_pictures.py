"""The lab's pictures: each a PNG of a sane size, and the data behind it what it should be."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tutorial  # noqa: E402

from tomato.lab.cgtool import Sample  # noqa: E402


def _size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_usage_plot_draws_memory_only_where_it_was_measured(workdir):
    from tomato.lab.plot import plot_usage
    samples = [Sample(0.5 * i, 0.3 if i % 2 else 0.29, 4 << 20) for i in range(1, 7)]
    both = workdir / "both.png"
    drawn = plot_usage(samples, str(both), quota_cpus=0.3, memory_limit=64 << 20)
    assert tutorial.check_png(str(both)) is None
    assert drawn["panels"] == 2 and drawn["memory_mib"] == [4.0] * 6
    assert drawn["quota_percent"] == 30.0 and drawn["memory_limit_mib"] == 64.0
    assert [round(c) for c in drawn["cpu_percent"]] == [30, 29, 30, 29, 30, 29]
    cpu_only = workdir / "cpu.png"
    drawn = plot_usage(samples, str(cpu_only), quota_cpus=0.3, has_memory=False)
    assert tutorial.check_png(str(cpu_only)) is None
    # no memory cgroup: no flat line at 0 claiming "no memory used", one panel
    assert drawn["panels"] == 1 and drawn["memory_mib"] is None
    assert _size(cpu_only)[1] < _size(both)[1]


def test_ns_show_draws_who_shares_what(tomato, workdir):
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(workdir / "bb"), "--image",
           "pic-bb")
    try:
        tomato("run", "-d", "--name", "pic-a", "--network", "none", "pic-bb", "/bin/busybox",
               "sleep", "100", timeout=120)
        tomato("run", "-d", "--name", "pic-b", "--network", "container:pic-a", "pic-bb",
               "/bin/busybox", "sleep", "100", timeout=120)
        png = workdir / "ns.png"
        out = tomato("ns", "show", "pic-a", "pic-b", "--png", str(png)).stdout.splitlines()
        assert out[0].split() == ["TYPE", "INODE", "SHARED", "BY"]
        assert out[-1] == f"wrote {png}"
        rows = {(r.split()[0], r.split("  ")[-1].strip()) for r in out[1:-1]}
        assert ("net", "pic-a, pic-b") in rows and ("pid", "pic-a") in rows and \
            ("pid", "pic-b") in rows and ("user", "pic-a, pic-b, the host") in rows
        assert tutorial.check_png(str(png)) is None
        # the data behind the picture: the inodes the kernel shows for each process
        from tomato.lab import nsview
        pids = {}
        for name in ("pic-a", "pic-b"):
            st = tomato("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
            pids[name] = int(st)
        view = nsview.inspect(list(pids.items()))
        for kind in nsview.TYPES:
            a = os.readlink(f"/proc/{pids['pic-a']}/ns/{kind}")
            b = os.readlink(f"/proc/{pids['pic-b']}/ns/{kind}")
            assert (view.of("pic-a")[kind] == view.of("pic-b")[kind]) == (a == b), kind
        drawn = nsview.draw(view, str(workdir / "again.png"))
        net = [n for n in drawn["namespaces"] if n[0] == "net"]
        assert len(net) == 1 and net[0][2] == ("pic-a", "pic-b")
        assert ("pic-a", "net", net[0][1]) in drawn["edges"]
        assert ("pic-b", "net", net[0][1]) in drawn["edges"]
        cid = tomato("inspect", "-f", "{{.Id}}", "pic-a").stdout.strip()
        assert any(p.endswith(f"/tomato/{cid}") for p in drawn["cgroups"])
        r = tomato("ns", "show", "no-such-box", check=False)
        assert r.returncode == 1 and r.stderr.startswith("tomato: ") and "Traceback" not in \
            r.stderr
    finally:
        tomato("rm", "-f", "pic-a", "pic-b", check=False)
        tomato("rmi", "pic-bb", check=False)
