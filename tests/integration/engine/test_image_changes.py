"""`--change` through both edges: the CLI's commit and import, and the API's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import TOMATO, Engine


def _config(engine: Engine, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(engine.run("image", "inspect", ref).stdout)[0]["Config"]


def test_commit_takes_every_change_import_takes(engine: Engine) -> None:
    """`commit -c "EXPOSE 80"` once exited 125 (its own parser knew five instructions)."""
    engine.run("run", "--name", "changed", "-e", "KEPT=1", "busybox", "true")
    engine.run("commit", "-c", "EXPOSE 80", "-c", "ENV A=1", "-c", "LABEL team=tomato",
               "-c", "VOLUME /data", "changed", "changes:commit")
    config = _config(engine, "changes:commit")
    assert "80/tcp" in config["ExposedPorts"] and "/data" in config["Volumes"]
    assert "A=1" in config["Env"] and config["Labels"] == {"team": "tomato"}
    engine.run("commit", "-c", "ENV B=2", "changed", "changes:again")
    engine.run("run", "--name", "again", "changes:again", "true")
    engine.run("commit", "-c", "ENV A=3", "again", "changes:third")
    assert "A=3" in _config(engine, "changes:third")["Env"]
    for ref in ("changes:commit", "changes:again", "changes:third"):
        engine.run("rmi", "-f", ref, check=False)


def test_import_reads_a_broken_exec_form_as_docker_does(engine: Engine, tmp_path: Path) -> None:
    """`import -c 'CMD [oops'` once printed a Python traceback: Docker's parser takes
    what is not a JSON array as the shell form."""
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-T", "/dev/null"], check=True)
    engine.run("import", "-c", "CMD [oops", "-c", "EXPOSE 80", str(tarball), "changes:imported")
    config = _config(engine, "changes:imported")
    assert config["Cmd"] == ["/bin/sh", "-c", "[oops"]
    assert "80/tcp" in config["ExposedPorts"]
    engine.run("rmi", "changes:imported")


def test_a_bad_change_is_one_line_from_both_commands(engine: Engine, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-T", "/dev/null"], check=True)
    engine.run("create", "--name", "unchanged", "busybox", "true")
    for args in (["import", "-c", "FROM busybox", str(tarball), "changes:never"],
                 ["commit", "-c", "FROM busybox", "unchanged", "changes:never"],
                 ["commit", "-c", "EXPOSE 80/foo", "unchanged", "changes:never"]):
        proc = subprocess.run([TOMATO, *args], capture_output=True, text=True,
                              env=engine.env(), timeout=60)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("tomato: ") and proc.stderr.count("\n") == 1, \
            proc.stderr
    assert "changes:never" not in engine.run("images").stdout
