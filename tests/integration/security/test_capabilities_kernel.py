"""Capabilities applied for real, each in a forked child, then used (or not)."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from pathlib import Path

from _security_child import exec_in_child, own_status_caps, run_in_child, status_caps

from tomato._sys import caps
from tomato.errors import InvalidArgument, PermissionDenied
from tomato.oci.security_defaults import DOCKER_DEFAULT_CAPS

UNPRIVILEGED = 1000
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
GREP_CAPS = ["/bin/grep", "Cap", "/proc/self/status"]


def _sets(names: list[str], *, ambient: list[str] | None = None,
          inheritable: list[str] | None = None) -> caps.CapSets:
    s = caps.parse(names)
    return caps.CapSets(bounding=s, effective=s, permitted=s,
                        inheritable=caps.parse(inheritable or []),
                        ambient=caps.parse(ambient or []))


def _docker_minus(*drop: str) -> caps.CapSets:
    return _sets([c for c in DOCKER_DEFAULT_CAPS if c not in drop])


def _open_raw_socket() -> int:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except OSError as err:
        return err.errno or -1
    return 0


def test_dropped_net_raw_cannot_open_raw_socket() -> None:
    def child(sets: caps.CapSets | None) -> int:
        if sets is not None:
            caps.apply(sets)
        return _open_raw_socket()

    assert run_in_child(lambda: child(_docker_minus())).ok() == 0  # kept: works
    assert run_in_child(lambda: child(_docker_minus("CAP_NET_RAW"))).ok() == errno.EPERM


def _private_mount_ns() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return -ctypes.get_errno()
    # Private propagation: nothing this child mounts is seen by (or leaks to) the host.
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return -ctypes.get_errno()
    return 0


def test_dropped_sys_admin_cannot_mount(workdir: Path) -> None:
    target = workdir / "mnt"
    target.mkdir()

    def child(keep_sys_admin: bool) -> int:
        rc = _private_mount_ns()
        if rc:
            return rc
        names = list(DOCKER_DEFAULT_CAPS) + (["CAP_SYS_ADMIN"] if keep_sys_admin else [])
        caps.apply(_sets(names))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, None) != 0:
            return ctypes.get_errno()
        return 0

    assert run_in_child(lambda: child(True)).ok() == 0
    assert run_in_child(lambda: child(False)).ok() == errno.EPERM


def test_bounding_set_drop_visible_in_status_and_survives_root_exec() -> None:
    sets = _docker_minus()
    want = caps.to_mask(sets.bounding)

    def child() -> dict[str, int]:
        caps.apply(sets)
        return own_status_caps()

    st = run_in_child(child).ok()
    assert st["CapBnd"] == want
    assert st["CapEff"] == want and st["CapPrm"] == want
    assert st["CapInh"] == 0 and st["CapAmb"] == 0
    # root regains on execve only what the bounding set still holds
    res = exec_in_child(lambda: caps.apply(sets), ["/bin/cat", "/proc/self/status"])
    assert res.exit_code == 0, res.error
    after = status_caps(res.output.decode())
    assert after["CapBnd"] == want and after["CapEff"] == want
    assert own_status_caps()["CapBnd"] != want  # the test process kept its own


def _become_user(sets: caps.CapSets) -> None:
    caps.drop_bounding(sets)
    caps.set_keep_caps(True)
    os.setgroups([])
    os.setgid(UNPRIVILEGED)
    os.setuid(UNPRIVILEGED)
    caps.set_keep_caps(False)
    caps.apply(sets)


def test_ambient_caps_survive_execve_of_non_root_process() -> None:
    wanted = ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"]
    mask = caps.to_mask(caps.parse(wanted))
    with_ambient = _sets(wanted, inheritable=wanted, ambient=wanted)
    res = exec_in_child(lambda: _become_user(with_ambient), GREP_CAPS)
    assert res.exit_code == 0, res.error or res.output
    st = status_caps(res.output.decode())
    assert st == {"CapInh": mask, "CapPrm": mask, "CapEff": mask, "CapBnd": mask, "CapAmb": mask}

    # the control: without ambient, a non-root execve loses every capability
    without = _sets(wanted, inheritable=wanted)
    res = exec_in_child(lambda: _become_user(without), GREP_CAPS)
    assert res.exit_code == 0, res.error or res.output
    st = status_caps(res.output.decode())
    assert st["CapEff"] == 0 and st["CapPrm"] == 0 and st["CapAmb"] == 0
    assert st["CapBnd"] == mask


def test_ambient_cap_outside_inheritable_is_skipped_with_warning() -> None:
    def child() -> list[object]:
        warnings = caps.apply(_sets(["CAP_NET_RAW", "CAP_KILL"], inheritable=["CAP_KILL"],
                                    ambient=["CAP_NET_RAW", "CAP_KILL"]))
        return [warnings, sorted(caps.ambient_set())]

    warnings, ambient = run_in_child(child).ok()
    assert ambient == [caps.CAP_NUMBERS["CAP_KILL"]]
    assert len(warnings) == 1 and "CAP_NET_RAW" in warnings[0]


def test_apply_names_a_capability_the_caller_does_not_hold() -> None:
    def child() -> str:
        eff, perm, inh = caps.capget()
        boot = caps.CAP_NUMBERS["CAP_SYS_BOOT"]
        caps.capset(eff - {boot}, perm - {boot}, inh)
        try:
            caps.apply(_sets(["CAP_KILL", "CAP_SYS_BOOT"]))
        except PermissionDenied as err:
            return str(err)
        return "no error"

    message = run_in_child(child).ok()
    assert "CAP_SYS_BOOT" in message and "CAP_KILL" not in message


def test_drop_bounding_after_setuid_is_refused() -> None:
    def child() -> str:
        sets = _sets(["CAP_KILL"])
        caps.set_keep_caps(True)
        os.setuid(UNPRIVILEGED)  # effective set now empty: no CAP_SETPCAP
        try:
            caps.apply(sets)
        except PermissionDenied as err:
            return str(err)
        return "no error"

    message = run_in_child(child).ok()
    assert "bounding" in message and "CAP_SETPCAP" in message


def test_keep_caps_flag_round_trips() -> None:
    def child() -> list[bool]:
        out = [caps.get_keep_caps()]
        caps.keep_caps_across_setuid()
        out.append(caps.get_keep_caps())
        caps.set_keep_caps(False)
        out.append(caps.get_keep_caps())
        return out

    assert run_in_child(child).ok() == [False, True, False]


def test_capget_matches_proc_status() -> None:
    eff, perm, inh = caps.capget()
    st = own_status_caps()
    assert caps.to_mask(eff) == st["CapEff"]
    assert caps.to_mask(perm) == st["CapPrm"]
    assert caps.to_mask(inh) == st["CapInh"]
    assert caps.to_mask(caps.bounding_set()) == st["CapBnd"]


def test_last_cap_is_the_kernels() -> None:
    expected = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert caps.last_cap() == expected
    assert caps.last_cap("/nonexistent/cap_last_cap") == caps.CAP_NUMBERS["CAP_BLOCK_SUSPEND"]


def test_effective_outside_permitted_is_refused_before_any_change() -> None:
    def child() -> list[object]:
        before = own_status_caps()
        bad = caps.CapSets(bounding=caps.parse(["CAP_KILL", "CAP_CHOWN"]),
                           effective=caps.parse(["CAP_KILL", "CAP_CHOWN"]),
                           permitted=caps.parse(["CAP_KILL"]))
        try:
            caps.apply(bad)
        except InvalidArgument as err:
            return [str(err), own_status_caps() == before]
        return ["no error", False]

    message, unchanged = run_in_child(child).ok()
    assert "CAP_CHOWN" in message and "CAP_KILL" not in message
    assert unchanged
