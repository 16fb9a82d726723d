"""no_new_privs blocks a setuid-root binary's gain for an unprivileged user."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from _security_child import exec_in_child, run_in_child

from tomato._sys import caps

UNPRIVILEGED = 1000


def _setuid_id(workdir: Path) -> Path:
    # The test tmpfs is mounted without nosuid, so the setuid bit takes effect.
    binary = workdir / "id-suid"
    shutil.copy2("/usr/bin/id", binary)
    os.chown(binary, 0, 0)
    os.chmod(binary, 0o4755)
    return binary


def _become_user(no_new_privs: bool) -> None:
    os.setgroups([])
    os.setgid(UNPRIVILEGED)
    os.setuid(UNPRIVILEGED)
    if no_new_privs:
        caps.set_no_new_privs()


def test_setuid_binary_gains_root_without_nnp_and_not_with_it(workdir: Path) -> None:
    fd = os.open(_setuid_id(workdir), os.O_RDONLY | os.O_CLOEXEC)
    try:
        plain = exec_in_child(lambda: _become_user(False), ["id", "-u"], exec_fd=fd)
        guarded = exec_in_child(lambda: _become_user(True), ["id", "-u"], exec_fd=fd)
    finally:
        os.close(fd)
    assert plain.exit_code == 0, plain.error or plain.output
    assert plain.output.decode().strip() == "0"  # the control: setuid works here
    assert guarded.exit_code == 0, guarded.error or guarded.output
    assert guarded.output.decode().strip() == str(UNPRIVILEGED)


def test_no_new_privs_is_reported_and_sticky() -> None:
    def child() -> list[object]:
        before = caps.get_no_new_privs()
        caps.set_no_new_privs()
        with open("/proc/self/status") as f:
            line = next(ln for ln in f if ln.startswith("NoNewPrivs:"))
        return [before, caps.get_no_new_privs(), line.split()[1]]

    assert run_in_child(child).ok() == [False, True, "1"]
