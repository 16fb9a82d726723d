"""tomato.network.usermode's pure parts: which ports a user may publish, slirp4netns's
command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomato.errors import PermissionDenied
from tomato.network import usermode


def test_ports_below_the_unprivileged_start_are_refused(tmp_path: Path) -> None:
    sysctl = tmp_path / "ip_unprivileged_port_start"
    sysctl.write_text("1024\n")
    usermode.refuse_privileged_ports([1024, 8080, 0], str(sysctl))  # 0: a port picked for us
    with pytest.raises(PermissionDenied) as err:
        usermode.refuse_privileged_ports([8080, 80], str(sysctl))
    assert str(err.value) == ("cannot publish port 80: ports below 1024 need root "
                              "(net.ipv4.ip_unprivileged_port_start=1024)")


def test_the_sysctl_decides(tmp_path: Path) -> None:
    sysctl = tmp_path / "ip_unprivileged_port_start"
    sysctl.write_text("80\n")
    usermode.refuse_privileged_ports([80], str(sysctl))
    assert usermode.unprivileged_port_start(str(tmp_path / "missing")) == 1024


def test_host_loopback_is_disabled_unless_asked() -> None:
    argv = usermode.slirp_argv("/ns", "/api.sock", 5)
    assert "--disable-host-loopback" in argv and argv[-2:] == ["/ns", "tap0"]
    assert "--ready-fd=5" in argv and "--api-socket=/api.sock" in argv
    allowed = usermode.slirp_argv("/ns", "/api.sock", 5, allow_host_loopback=True)
    assert "--disable-host-loopback" not in allowed
