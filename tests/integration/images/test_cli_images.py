"""The ``tomato`` command line for images, run as a user would (a subprocess)."""

import json
import os
import subprocess
import sys

BIN = [sys.executable, "-m", "tomato.cli.engine"]


def tomato(root, *args, input=None, check=True):
    env = {**os.environ, "TOMATO_ROOT": str(root), "TOMATO_CONFIG": str(root / "cfg")}
    env.pop("TOMATO_DEBUG", None)
    p = subprocess.run([*BIN, *args], capture_output=True, text=input is None or
                       isinstance(input, str), input=input, env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_cli_image_lifecycle(test_images, workdir):
    reg = test_images.registry
    name = f"{reg.addr}/busybox:latest"
    p = tomato(workdir, "pull", name)
    assert p.stdout.splitlines()[-1] == name
    assert "Digest: sha256:" in p.stdout
    table = tomato(workdir, "images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:2] == [f"{reg.addr}/busybox", "latest"]
    ids = tomato(workdir, "images", "-q").stdout.split()
    assert len(ids) == 1 and len(ids[0]) == 12
    tomato(workdir, "tag", name, "local/box:v1")
    rows = [json.loads(line) for line in
            tomato(workdir, "image", "ls", "--format", "json").stdout.splitlines()]
    assert {(r["Repository"], r["Tag"]) for r in rows} == {
        (f"{reg.addr}/busybox", "latest"), ("local/box", "v1")}
    assert tomato(workdir, "images", "--format", "{{.Repository}}:{{.Tag}}",
                  "local/*").stdout.split() == ["local/box:v1"]
    doc = json.loads(tomato(workdir, "image", "inspect", "local/box:v1").stdout)
    assert doc[0]["Config"]["Cmd"] == ["sh"] and doc[0]["Id"].startswith(ids[0], 7)
    assert tomato(workdir, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}",
                  "local/box:v1").stdout.strip() == "linux/amd64"
    hist = tomato(workdir, "history", "local/box:v1").stdout.splitlines()
    assert hist[0].split()[0] == "IMAGE" and len(hist) >= 2
    out = workdir / "box.tar"
    tomato(workdir, "save", "-o", str(out), "local/box:v1")
    p = tomato(workdir / "fresh", "load", "-i", str(out))
    assert p.stdout.strip() == "Loaded image: local/box:v1"
    with open(out, "rb") as fh:
        p = tomato(workdir / "fresh2", "load", input=fh.read())
    assert "Loaded image: local/box:v1" in p.stdout.decode()
    df = tomato(workdir, "system", "df").stdout.splitlines()
    assert df[1].split()[:3] == ["Images", "1", "0"]
    p = tomato(workdir, "rmi", "local/box:v1")
    assert p.stdout.strip() == "Untagged: local/box:v1"
    p = tomato(workdir, "rmi", name)
    assert "Deleted: sha256:" in p.stdout
    assert tomato(workdir, "images", "-q").stdout == ""
    p = tomato(workdir, "image", "prune", "-f")
    assert "Total reclaimed space" in p.stdout


def test_cli_import_with_changes(test_images, workdir):
    import tarfile
    tar_path = workdir / "root.tar"
    with tarfile.open(tar_path, "w") as tf:
        tf.add(test_images.rootfs / "etc", arcname="etc")
    p = tomato(workdir, "import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV A=b", "-m", "hi",
               str(tar_path), "imp:1")
    assert p.stdout.startswith("sha256:")
    doc = json.loads(tomato(workdir, "image", "inspect", "imp:1").stdout)[0]
    assert doc["Config"] == {"Cmd": ["/bin/sh"], "Env": ["A=b"]}


def test_cli_errors_are_one_line(workdir):
    p = tomato(workdir, "rmi", "nothere", check=False)
    assert p.returncode == 1 and p.stderr == "tomato: no such image: nothere\n"
    p = tomato(workdir, "pull", "Bad:Name", check=False)
    assert p.returncode == 1 and p.stderr.startswith("tomato: invalid reference format")
    assert "Traceback" not in p.stderr
    p = tomato(workdir, "pull", "127.0.0.1:1/x", check=False)
    assert p.returncode == 1 and "cannot reach registry" in p.stderr
    p = tomato(workdir, "images", "--nope", check=False)
    assert p.returncode == 125 and p.stderr.startswith("tomato: unknown flag: --nope\n")
    p = tomato(workdir, "image", "inspect", "nothere", check=False)
    assert p.returncode == 1 and p.stdout.strip() == "[]"
    p = tomato(workdir, "save", "-o", str(workdir / "x.tar"), "nothere", check=False)
    assert p.returncode == 1 and not (workdir / "x.tar").exists()


def test_cli_login_logout(workdir):
    from helpers.registry import FakeRegistry, f, fake_image, make_tar
    manifests, blobs, md = fake_image([make_tar([f("x", b"1")])])
    with FakeRegistry(manifests, blobs, token="tk", basic=("bob", "pw")) as reg:
        p = tomato(workdir, "login", "-u", "bob", "--password-stdin", reg.addr, input="bad\n",
                   check=False)
        assert p.returncode == 1 and p.stderr.startswith("tomato: ")
        p = tomato(workdir, "login", "-u", "bob", "--password-stdin", reg.addr, input="pw\n")
        assert p.stdout.strip() == "Login Succeeded"
        assert (workdir / "cfg" / "config.json").stat().st_mode & 0o777 == 0o600
        tomato(workdir, "pull", "-q", f"{reg.addr}/x")
        assert tomato(workdir, "logout", reg.addr).stdout.startswith("Removing login")
