"""A healthcheck in a rootless user's engine (issue 19): its monitor stays in Python
(the tests run tomato from a source tree, without tomato-shim), and each check runs
from that tree too."""

from __future__ import annotations

import json

from helpers.engine import until
from helpers.rootless import RootlessUser


def test_a_users_container_gets_healthy(busybox_user: RootlessUser) -> None:
    user = busybox_user
    cid = user.tomato("run", "-d", "--network", "none", "--health-cmd", "test -e /tmp/ok",
                      "--health-interval", "100ms", "--health-retries", "1", "busybox",
                      "sleep", "1000").stdout.strip()
    try:
        def status() -> str:
            doc = json.loads(user.tomato("inspect", cid).stdout)[0]
            return (doc["State"].get("Health") or {}).get("Status", "none")

        assert until(lambda: status() == "unhealthy", 30)
        user.tomato("exec", cid, "touch", "/tmp/ok")
        assert until(lambda: status() == "healthy", 30)
        assert user.tomato("ps", "--format", "{{.Status}}").stdout.strip().endswith(
            "(healthy)")
    finally:
        user.tomato("rm", "-f", cid, check=False)
