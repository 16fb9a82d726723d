"""Paths, create/destroy, persistence, pids, kill and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from cgroup_helpers import has_file, read_file, wait_until

from tomato.cgroups import Resources, hierarchies, load_manager, mode, new_manager
from tomato.errors import InvalidArgument

MiB = 1 << 20


def test_detection_matches_mountinfo():
    found = hierarchies()
    assert found, "no cgroup hierarchy found"
    with open("/proc/self/mountinfo") as f:
        mounted = {line.split()[4] for line in f if " - cgroup" in line}
    for h in found:
        assert h.mountpoint in mounted
        assert os.path.isdir(h.directory(h.own_path))
    expected = {(1, 1): "hybrid", (1, 0): "legacy", (0, 1): "unified"}
    key = (int(any(h.version == 1 for h in found)), int(any(h.version == 2 for h in found)))
    assert mode() == expected[key]


def test_relative_path_is_under_own_cgroup(make_manager, parent_name):
    mgr = make_manager("rel")
    by_mount = {h.mountpoint: h for h in hierarchies()}
    for d in set(mgr.paths.values()):
        h = next(h for m, h in by_mount.items() if d.startswith(m + "/"))
        assert d == os.path.join(h.directory(h.own_path), parent_name, "rel")
        assert os.path.isdir(d)


def test_absolute_path_is_under_hierarchy_root(make_manager, parent_name):
    mgr = make_manager("abs", path=f"/{parent_name}/abs")
    for h in hierarchies():
        if h.version == mgr.version or (mgr.version == 1 and "" in mgr.paths):
            want = os.path.join(h.mountpoint, parent_name, "abs")
            assert want in mgr.paths.values()
            assert os.path.isdir(want)


def test_empty_path_defaults_to_tomato_id():
    mgr = new_manager("", "some-id")
    assert all(p.endswith("/tomato/some-id") for p in mgr.paths.values())
    assert not mgr.exists()


@pytest.mark.parametrize("bad", ["a/../b", "system.slice:tomato:x"])
def test_bad_cgroups_path(bad):
    with pytest.raises(InvalidArgument, match="cgroupsPath"):
        new_manager(bad, "x")


def test_create_idempotent_destroy_twice(make_manager):
    mgr = make_manager()
    mgr.create()
    assert mgr.exists()
    mgr.destroy()
    assert not mgr.exists()
    mgr.destroy()  # already gone: no error


def test_destroy_removes_parents_it_made(make_manager, parent_name):
    mgr = make_manager("only")
    parents = {os.path.dirname(p) for p in mgr.paths.values()}
    mgr.destroy()
    for p in parents:
        assert not os.path.exists(p), p


def test_destroy_keeps_shared_parent(make_manager, parent_name):
    a, b = make_manager("a"), make_manager("b")
    a.destroy()
    assert b.exists()
    for p in b.paths.values():
        assert os.path.isdir(os.path.dirname(p))


def test_to_dict_round_trip(make_manager, procs):
    mgr = make_manager()
    again = load_manager(json.loads(json.dumps(mgr.to_dict())))
    assert again.paths == mgr.paths and again.version == mgr.version
    p = procs.start(again, ["sleep", "30"])
    assert mgr.pids() == [p.pid]


def test_load_manager_rejects_garbage():
    with pytest.raises(InvalidArgument):
        load_manager({"version": 1})


def test_pids_recursive_and_kill_all(mgr, procs):
    p1 = procs.start(mgr, ["sleep", "60"])
    # A sub-cgroup of the container's own, as a container with a cgroup
    # namespace might make; pids() and kill_all() must include it.
    subdirs = []
    for d in set(mgr.paths.values()):
        sub = os.path.join(d, "inner")
        os.mkdir(sub)
        subdirs.append(sub)
    if mgr.version == 1 and "cpuset" in mgr.paths:
        sub = os.path.join(mgr.paths["cpuset"], "inner")
        for f in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(mgr.paths["cpuset"], f)) as src:
                value = src.read().strip()
            with open(os.path.join(sub, f), "w") as dst:
                dst.write(value)
    p2 = procs.start(mgr, ["sleep", "60"])
    for sub in subdirs:
        with open(os.path.join(sub, "cgroup.procs"), "w") as f:
            f.write(str(p2.pid))
    assert sorted(mgr.pids()) == sorted([p1.pid, p2.pid])
    mgr.kill_all(signal.SIGTERM)
    assert p1.wait(timeout=10) == -signal.SIGTERM
    assert p2.wait(timeout=10) == -signal.SIGTERM
    wait_until(lambda: mgr.pids() == [], what="empty cgroup")
    mgr.destroy()  # removes the inner cgroups bottom-up
    assert not mgr.exists()


def test_kill_all_sigkill_catches_forkers(mgr, procs):
    code = ("import os, time\n"
            "while True:\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60); os._exit(0)\n"
            "    time.sleep(0.01)\n")
    mgr.set(Resources.from_oci({"pids": {"limit": 64}}))
    procs.python(mgr, code)
    wait_until(lambda: len(mgr.pids()) >= 5, what="forked children")
    mgr.kill_all(signal.SIGKILL)
    wait_until(lambda: mgr.pids() == [], what="every process killed")
    assert not mgr.frozen()


# ---- bad input ----------------------------------------------------------------

def _snapshot(mgr) -> dict[str, str]:
    out = {}
    for ctrl, name in (("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.max"), ("pids", "pids.max"),
                       ("memory", "memory.limit_in_bytes"), ("memory", "memory.max"),
                       ("cpuset", "cpuset.cpus")):
        if has_file(mgr, ctrl, name):
            out[name] = read_file(mgr, ctrl, name)
    return out


@pytest.mark.parametrize("oci, field", [
    ({"cpu": {"quota": -5}}, "cpu.quota"),
    ({"cpu": {"period": "fast"}}, "cpu.period"),
    ({"cpu": {"cpus": "0-"}}, "cpu.cpus"),
    ({"memory": {"limit": -2}}, "memory.limit"),
    ({"pids": {"limit": "many"}}, "pids.limit"),
    ({"devices": [{"allow": False, "type": "x", "access": "rwm"}]}, "devices[0].type"),
    ({"devices": [{"allow": True, "type": "c", "access": "rwx"}]}, "devices[0].access"),
    ({"blockIO": {"weight": 5}}, "blockIO.weight"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "hugepageLimits[0].pageSize"),
])
def test_invalid_values_name_the_field(oci, field):
    with pytest.raises(InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")):
        Resources.from_oci(oci)


def test_cpuset_naming_missing_cpus(mgr):
    before = _snapshot(mgr)
    with pytest.raises(InvalidArgument, match=r"cpu\.cpus: 4096 not available"):
        mgr.set(Resources.from_oci({"pids": {"limit": 7}, "cpu": {"cpus": "0,4096"}}))
    assert _snapshot(mgr) == before


def test_kernel_refusal_rolls_back(mgr):
    """A value the kernel rejects fails set() naming the file and value, and the
    knobs written before it are restored."""
    mgr.set(Resources.from_oci({"cpu": {"quota": 20000, "period": 100000},
                                "pids": {"limit": 9}}))
    before = _snapshot(mgr)
    # A throttle for a device that does not exist: ENODEV from the kernel, after
    # the cpu and pids knobs were already written.
    bad = {"blockIO": {"throttleReadBpsDevice": [{"major": 4095, "minor": 4095, "rate": 1}]}}
    match = r"(blkio\.throttle\.read_bps_device|io\.max).*4095:4095"
    with pytest.raises(InvalidArgument, match=match):
        mgr.set(Resources.from_oci({"cpu": {"quota": 70000, "period": 100000},
                                    "pids": {"limit": 99}, **bad}))
    assert _snapshot(mgr) == before


def test_memory_limit_below_usage(mgr, procs):
    """v1 refuses a limit it cannot reclaim down to (no swap: anonymous memory
    cannot go anywhere); v2 instead OOM-kills, which the oom test covers."""
    if mgr.version != 1:
        pytest.skip("cgroup v2 never refuses memory.max: it reclaims or OOM-kills")
    if not has_file(mgr, "memory", "memory.memsw.limit_in_bytes"):
        pytest.skip("without swap accounting the kernel could swap instead of refusing")
    mgr.set(Resources.from_oci({"memory": {"limit": 128 * MiB, "swap": 128 * MiB}}))
    p = procs.python(mgr, "import time\nb = b'x' * (48 << 20)\nprint('ok', flush=True)\n"
                     "time.sleep(60)\n", stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ok"
    before = _snapshot(mgr)
    # Even with swap the kernel cannot fit ~58 MiB of memory+swap into 16 MiB.
    with pytest.raises(InvalidArgument, match=r"memory\..*limit_in_bytes.*busy"):
        mgr.set(Resources.from_oci({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}}))
    assert _snapshot(mgr) == before
    assert p.poll() is None  # the kernel refused rather than killed


def test_backend_matches_host_mode(mgr):
    """v2 on a unified host (the KVM guest), v1 on legacy and hybrid ones."""
    assert mgr.version == (2 if mode() == "unified" else 1)
    if mgr.version == 2:
        assert list(mgr.paths) == [""]
        with open(os.path.join(os.path.dirname(mgr.paths[""]), "cgroup.subtree_control")) as f:
            enabled = set(f.read().split())
        assert {"cpu", "memory", "pids"} <= enabled


def test_default_parent_removed_by_last_container_out(parent_name):
    """Two containers under the default "tomato/<id>": whichever is destroyed
    last removes the shared "tomato" parent (unless others still use it)."""
    a = new_manager("", parent_name + "-a")
    b = new_manager("", parent_name + "-b")
    try:
        a.create()
        b.create()
        a.destroy()
        assert b.exists()
        parents = {os.path.dirname(p) for p in b.paths.values()}
        b.destroy()
        for p in parents:
            # Gone, or still holding another user's containers (a shared host).
            assert not os.path.isdir(p) or any(os.path.isdir(os.path.join(p, c))
                                               for c in os.listdir(p))
    finally:
        a.destroy()
        b.destroy()


def test_kill_all_keeps_a_paused_container_paused(mgr, procs):
    p = procs.start(mgr, ["sleep", "60"])
    mgr.freeze()
    mgr.kill_all(signal.SIGTERM)
    assert mgr.frozen()          # still paused
    if mgr.version == 1:
        # v1 holds even fatal signals until resume; the v2 freezer lets a
        # fatal one through, so there the process may already be gone.
        time.sleep(0.2)
        assert p.poll() is None
    mgr.thaw()
    assert p.wait(timeout=10) == -signal.SIGTERM


def test_kill_all_sigkill_on_paused_container(mgr, procs):
    p = procs.start(mgr, ["sleep", "60"])
    mgr.freeze()
    mgr.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL


def test_operations_on_a_missing_cgroup_say_not_found(make_manager):
    from tomato.errors import NotFound

    mgr = make_manager(create=False)
    for op in (mgr.stats, mgr.freeze, mgr.thaw, mgr.pids, lambda: mgr.kill_all(9),
               lambda: mgr.apply(os.getpid()),
               lambda: mgr.set(Resources.from_oci({"pids": {"limit": 3}}))):
        with pytest.raises(NotFound, match="does not exist"):
            op()
    mgr.destroy()  # nothing to do, no error


def test_check_before_update_refuses_limit_below_usage(mgr, procs):
    p = procs.python(mgr, "import time\nb = b'x' * (24 << 20)\nprint('ok', flush=True)\n"
                     "time.sleep(60)\n", stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ok"
    before = _snapshot(mgr)
    with pytest.raises(InvalidArgument, match="below the current usage"):
        mgr.set(Resources.from_oci({"memory": {"limit": 4 * MiB, "checkBeforeUpdate": True}}))
    assert _snapshot(mgr) == before
    assert p.poll() is None
