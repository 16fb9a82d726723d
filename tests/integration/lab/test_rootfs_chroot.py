"""`tomato rootfs from-host` and `tomato chroot`, and why pivot_root is used."""

from __future__ import annotations

import os
import shutil

import pytest


def test_from_host_bash_runs_in_chroot(tomato, workdir):
    into = workdir / "tomato"
    out = tomato("rootfs", "from-host", "/bin/bash", "/bin/ls", "--into", str(into)).stdout
    lines = out.splitlines()
    # a tree: which program needs which library (bash: libtinfo, which needs libc)
    assert lines[:3] == ["/bin/bash",
                         "├── libtinfo.so.6 => /lib/x86_64-linux-gnu/libtinfo.so.6",
                         "│   └── libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6"]
    assert "└── /lib64/ld-linux-x86-64.so.2 (the dynamic loader: PT_INTERP)" in lines
    assert "/bin/ls" in lines and "├── libc.so.6 (above)" in lines
    assert lines[-2:] == ["linux-vdso.so.1 is not copied: the kernel maps it into every "
                          "process", f"copied {len(_files(into))} files into {into}"]
    for f in ("bin/bash", "bin/ls", "lib64/ld-linux-x86-64.so.2",
              "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libtinfo.so.6"):
        assert (into / f).is_file() and not (into / f).is_symlink(), f
    r = tomato("chroot", str(into), "/bin/bash", "-c", "echo $((6*7)); ls /")
    assert r.stdout.split() == ["42", "bin", "dev", "lib", "lib64", "proc", "sys", "tmp"]


def test_from_host_matches_ldd(tomato, workdir):
    """The ELF walk finds what the real loader finds (ldd runs it)."""
    import subprocess
    out = tomato("rootfs", "from-host", "/bin/ls", "--into", str(workdir / "r")).stdout
    ldd = subprocess.run(["ldd", "/bin/ls"], capture_output=True, text=True).stdout
    want = {line.split("=>")[0].split("(")[0].strip() for line in ldd.splitlines()} - \
        {"linux-vdso.so.1"}
    ours = {line.lstrip("│├└─ ").split("=>")[0].split("(")[0].strip()
            for line in out.splitlines()[1:-2]
            if not line.endswith(("(above)", "(the dynamic loader)"))}
    assert ours == want


def test_static_binary_needs_nothing(tomato, workdir):
    into = workdir / "bb"
    out = tomato("rootfs", "from-host", "/bin/busybox", "--into", str(into)).stdout
    assert "statically linked" in out
    r = tomato("chroot", str(into), "/bin/busybox", "echo", "static")
    assert r.stdout == "static\n"


def test_bad_programs(tomato, workdir):
    r = tomato("rootfs", "from-host", "/no/such/prog", "--into", str(workdir / "x"), check=False)
    assert r.returncode == 1 and r.stderr == "tomato: no such program: /no/such/prog\n"
    r = tomato("rootfs", "from-host", "no-such-prog-xyz", "--into", str(workdir / "x"),
               check=False)
    assert r.returncode == 1 and "not found on PATH" in r.stderr
    script = shutil.which("ldd")  # a bash script, not ELF
    r = tomato("rootfs", "from-host", script, "--into", str(workdir / "x"), check=False)
    assert r.returncode == 1 and "is not an ELF program" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_from_host_image_runs_with_layers(tomato, workdir):
    into = workdir / "img"
    out = tomato("rootfs", "from-host", "/bin/busybox", "--into", str(into),
                 "--image", "lab-busybox").stdout
    assert "imported lab-busybox: sha256:" in out
    r = tomato("layers", "lab-busybox")
    lines = r.stdout.splitlines()
    assert lines[3].startswith("│ lowerdir 1  read-only (a bind: one layer) layer 1/1 ")
    assert lines[-1].startswith("mount --rbind -o ro ")
    lower = lines[-2].split(" = ")[1]
    assert os.path.isfile(os.path.join(lower, "bin/busybox"))


def test_plain_chroot_is_escaped_pivot_root_is_not(tomato, workdir):
    into = workdir / "esc"
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(into))
    out = tomato("chroot", "--try-escape", str(into)).stdout.splitlines()
    assert out[0] == "chroot(DIR):"
    assert out[1].startswith("  dotdot") and out[1].endswith("ESCAPED to the host")
    assert out[2].startswith("  proc") and out[2].endswith("ESCAPED to the host")
    assert out[3] == "unshare(mnt|pid) + pivot_root(DIR) + umount old root:"
    assert out[4].endswith("stayed inside") and out[5].endswith("stayed inside")
    assert sorted(os.listdir(into)) == ["bin", "dev", "proc", "sys", "tmp"]


def test_chroot_explain_and_missing(tomato, workdir):
    into = workdir / "e"
    tomato("rootfs", "from-host", "/bin/busybox", "--into", str(into))
    r = tomato("chroot", "--explain=full", str(into), "/bin/busybox", "true")
    assert r.stderr.splitlines() == [
        f'+ chroot("{into}") — chroot {into}', '+ chdir("/") — cd /',
        "+ execve('/bin/busybox', ['/bin/busybox', 'true']) — /bin/busybox true"]
    r = tomato("chroot", str(into), "/bin/bash", check=False)
    assert r.returncode == 127 and "no such file inside the new root" in r.stderr
    r = tomato("chroot", str(workdir / "nope"), "/bin/sh", check=False)
    assert r.returncode == 1 and "no such directory" in r.stderr


@pytest.mark.parametrize("prog", ["/bin/bash", "/bin/sh"], ids=["bash", "sh"])
def test_shells_run(tomato, workdir, prog):
    into = workdir / "sh"
    tomato("rootfs", "from-host", prog, "--into", str(into))
    assert tomato("chroot", str(into), prog, "-c", "echo ok").stdout == "ok\n"


def _files(root) -> list[str]:
    return [os.path.join(d, f) for d, _dirs, files in os.walk(root) for f in files]
