"""The images a CRI node needs, made here with no network: a pause image for pod
sandboxes and stand-ins for what critest pulls by its upstream names.

Everything is busybox (Debian's busybox-static) plus a few files: two static C
programs from tools/cri/ (``pause`` and the setuid ``nonewprivs`` probe) and small
shell scripts that behave as the upstream images do where critest looks:

- ``e2e-test-images/nginx``: a process named ``nginx`` (busybox's httpd, exec'd
  through a symlink of that name) serving port 80, its pid in /var/run/nginx.pid;
  ``hostnet-nginx-amd64`` is the same on port 12003 (it runs in the node's network);
- ``e2e-test-images/httpd``: httpd on port 80, logging httpd's "httpd -D FOREGROUND";
- ``e2e-test-images/nonewprivs``: prints "Effective uid: N" from a setuid-root binary;
- ``k8s-staging-cri-tools/test-image-*``: users and groups in the config, a file
  named after the image so that different names are different images, and one image
  under three tags (cri-tools' images/build script says what each holds).

``build_layout`` writes one OCI layout holding every image (umoci, a tool nobody
here wrote), and ``push_all`` copies each to a registry (skopeo) under the path a
registry mirror serves for the upstream name.  ``IMAGES`` maps upstream names to
tags of that layout.  critest's one image pinned to an upstream digest
(test-image-digest@sha256:...) cannot be made: that spec fails for every runtime.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "cri"
ENVPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Bumped when an image's recipe changes, so cached layouts are rebuilt.
RECIPE = 5

K8S = "registry.k8s.io"
E2E = f"{K8S}/e2e-test-images"
CRI_TOOLS = "gcr.io/k8s-staging-cri-tools"
#: Images of the lane's own, under a name no real registry serves.
OWN = "tomato.test/cri"
#: Registries whose names a node's mirror configuration sends to the local registry.
MIRRORED = ("registry.k8s.io", "gcr.io", "tomato.test", "docker.io")

SANDBOX_IMAGE = f"{K8S}/pause:3.9"
BUSYBOX = f"{E2E}/busybox:1.29-2"
NGINX = f"{E2E}/nginx:1.14-2"
HTTPD = f"{E2E}/httpd:2.4.39-4"
NONEWPRIVS = f"{E2E}/nonewprivs:1.3"
NO_ENTRYPOINT = f"{OWN}/no-entrypoint:latest"

NGINX_STANDIN = """#!/bin/sh
# Stand-in for nginx as critest sees it: a process named nginx (comm comes from the
# symlink's name, busybox picks the applet from argv[0]) and its pid in the pid file.
mkdir -p /var/run
echo $$ > /var/run/nginx.pid
# The realm argument puts nginx's "master process" title in pid 1's cmdline, where
# critest looks for it; httpd uses a realm only with a configuration file.
exec -a httpd /usr/sbin/nginx -f -p "${NGINX_PORT:-80}" -h /usr/share/nginx/html \
    -r "nginx: master process nginx -g daemon off;"
"""

# Commands upstream's busybox has and Debian's busybox-static lacks.
PGREP = """#!/bin/sh
# pgrep PATTERN: the pids of processes whose name matches PATTERN.
[ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
found=1
for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = $$ ] && continue
    name=$(cat "$d/comm" 2>/dev/null) || continue
    if echo "$name" | grep -q -- "$1"; then echo "$pid"; found=0; fi
done
exit $found
"""

IPCS = """#!/bin/sh
# ipcs -m: this IPC namespace's shared memory segments, from /proc/sysvipc/shm.
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
    printf "0x%08x %-10s %-10s %-10s %-10s %-10s\\n" "$key" "$shmid" "$uid" "$perms" "$size" \\
        "$nattch"
done
"""

HTTPD_STANDIN = """#!/bin/sh
# Stand-in for httpd-foreground: httpd's start-up line, then httpd on port 80.
echo "[mpm_event:notice] AH00489: Apache/2.4.39 (Unix) configured"
echo "[core:notice] AH00094: Command line: 'httpd -D FOREGROUND'"
exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs
"""


@dataclass(frozen=True)
class Recipe:
    """One image: the base's config changed by ``config`` (umoci config flags), plus
    the files in ``files`` (path → (content, mode)) and symlinks (path → target)."""

    tag: str
    config: tuple[str, ...] = ()
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    base: str = "busybox"


def _marker(name: str) -> dict[str, tuple[bytes, int]]:
    return {f"/{name}": (b"", 0o644)}


def recipes(pause: bytes, nonewprivs: bytes) -> dict[str, Recipe]:
    """Upstream name → how its stand-in is made."""
    nginx_files = {"/usr/local/bin/nginx-standin": (NGINX_STANDIN.encode(), 0o755),
                   "/usr/share/nginx/html/index.html":
                       (b"<title>Welcome to nginx!</title>\n", 0o644)}
    nginx_links = {"/usr/sbin/nginx": "/bin/busybox"}
    nginx_cfg = ("--config.entrypoint", "/usr/local/bin/nginx-standin", "--clear=config.cmd",
                 "--config.exposedports", "80/tcp")
    group_files = {
        "/etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:"
                        b"/bin/false\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\n"
                        b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
        "/etc/group": (b"root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\n"
                       b"group-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n",
                       0o644)}
    out = {
        SANDBOX_IMAGE: Recipe("pause", ("--config.entrypoint", "/pause"),
                              {"/pause": (pause, 0o755)}, base=""),
        BUSYBOX: Recipe("busybox-e2e"),
        NGINX: Recipe("nginx", nginx_cfg, nginx_files, nginx_links),
        f"{CRI_TOOLS}/hostnet-nginx-amd64:latest": Recipe(
            "hostnet-nginx", (*nginx_cfg, "--config.env", "NGINX_PORT=12003"),
            nginx_files, nginx_links),
        HTTPD: Recipe("httpd", ("--config.cmd", "/usr/local/bin/httpd-foreground"),
                      {"/usr/local/bin/httpd-foreground": (HTTPD_STANDIN.encode(), 0o755),
                       "/usr/local/apache2/htdocs/index.html": (b"<h1>It works!</h1>\n", 0o644)}),
        NONEWPRIVS: Recipe("nonewprivs", ("--config.entrypoint", "/usr/local/bin/nnp",
                                          "--clear=config.cmd"),
                           {"/usr/local/bin/nnp": (nonewprivs, 0o4755)}),
        f"{CRI_TOOLS}/test-image-user-uid:latest": Recipe("user-uid", ("--config.user", "1002")),
        f"{CRI_TOOLS}/test-image-user-username:latest": Recipe(
            "user-username", ("--config.user", "www-data")),
        f"{CRI_TOOLS}/test-image-user-uid-group:latest": Recipe(
            "user-uid-group", ("--config.user", "1003:1004")),
        f"{CRI_TOOLS}/test-image-user-username-group:latest": Recipe(
            "user-username-group", ("--config.user", "www-data:1004")),
        f"{CRI_TOOLS}/test-image-predefined-group:latest": Recipe(
            "predefined-group", ("--config.user", "1000"), group_files),
        NO_ENTRYPOINT: Recipe("no-entrypoint", ("--clear=config.cmd",
                                                "--clear=config.entrypoint")),
    }
    for name in ("test-image-latest", "test-image-1", "test-image-2", "test-image-3"):
        out[f"{CRI_TOOLS}/{name}:latest"] = Recipe(name, files=_marker(name))
    for tag in ("test", "all"):
        out[f"{CRI_TOOLS}/test-image-tag:{tag}"] = Recipe(f"test-image-tag-{tag}",
                                                           files=_marker(tag))
    for n in ("1", "2", "3"):  # one image under three tags: the same layout tag
        out[f"{CRI_TOOLS}/test-image-tags:{n}"] = Recipe("same-image", files=_marker("same-image"))
    return out


def repository_path(name: str) -> str:
    """Where a mirror finds ``name``: the path after the registry's host."""
    host, _, rest = name.partition("/")
    if host == "docker.io" and "/" not in rest.split(":")[0]:
        rest = "library/" + rest
    return rest


def compile_static(source: Path, out: Path) -> bytes:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("a C compiler is needed for the CRI images (apt-get install gcc)")
    subprocess.run([cc, "-static", "-O2", "-Wall", "-o", str(out), str(source)], check=True,
                   capture_output=True, timeout=120)
    return out.read_bytes()


def _umoci(*args: str) -> None:
    r = subprocess.run(["umoci", *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"umoci {' '.join(args)}: {r.stderr.strip()}")


def _write_tree(root: Path, recipe: Recipe) -> None:
    for path, (data, mode) in recipe.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
    for path, dest in recipe.links.items():
        link = root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(dest)


def find_busybox(cache: Path | None = None) -> Path:
    """Debian's busybox package as tools/cri/build-cri-tools.sh leaves it in ``cache``
    (its shell, as upstream's, executes /bin/ls rather than running the applet
    itself, so a masked path shows), else busybox-static's /bin/busybox."""
    if cache is not None and (cache / "busybox" / "bin" / "busybox").is_file():
        return cache / "busybox" / "bin" / "busybox"
    return Path("/bin/busybox")


def _shared_libraries(binary: Path) -> list[Path]:
    """The host's files a dynamic executable needs (what ldd names), none if static."""
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    found = []
    for line in r.stdout.splitlines():
        words = line.replace("=>", " ").split()
        found += [Path(w) for w in words if w.startswith("/")]
    return found


def _busybox_base(root: Path, busybox: Path) -> None:
    """A busybox system as upstream's image: applets as hard links (masking /bin/ls
    must not mask the shell), pgrep and ipcs, root, www-data and nobody."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp",
              "root", "var/www", "run", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True,
                             text=True, timeout=30).stdout.split()
    for applet in applets:
        link = root / applet
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(root / "bin" / "busybox", link)
    for lib in _shared_libraries(busybox):
        dest = root / str(lib).lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "www-data:x:33:33:www-data:/var/www:/bin/false\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\n")
    for name, text in (("pgrep", PGREP), ("ipcs", IPCS)):
        (root / "usr" / "bin" / name).write_text(text)
        (root / "usr" / "bin" / name).chmod(0o755)


def build_layout(cache: Path, busybox: Path) -> Path:
    """An OCI layout at ``cache/layout`` with every image of ``recipes``, on the busybox
    executable ``busybox`` (idempotent: a finished layout carries a stamp naming the
    recipe's version and the busybox used)."""
    layout = cache / "layout"
    kind = "dynamic" if _shared_libraries(busybox) else "static"
    stamp = cache / f"layout.recipe-{RECIPE}-{kind}"
    if stamp.exists():
        return layout
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    work = cache / "work"
    work.mkdir()
    pause = compile_static(TOOLS / "pause.c", work / "pause")
    nnp = compile_static(TOOLS / "nonewprivs.c", work / "nonewprivs")
    common = ("--config.env", ENVPATH, "--config.workingdir", "/", "--architecture", "amd64",
              "--os", "linux")
    _umoci("init", "--layout", str(layout))
    base_root = work / "busybox"
    _busybox_base(base_root, busybox)
    _umoci("new", "--image", f"{layout}:busybox")
    _umoci("insert", "--image", f"{layout}:busybox", str(base_root), "/")
    _umoci("config", "--image", f"{layout}:busybox", "--config.cmd", "sh", *common)
    done: set[str] = set()
    for i, recipe in enumerate(recipes(pause, nnp).values()):
        if recipe.tag in done:
            continue
        done.add(recipe.tag)
        image = f"{layout}:{recipe.tag}"
        if recipe.base:
            _umoci("config", "--image", f"{layout}:{recipe.base}", "--tag", recipe.tag,
                   *recipe.config)
        else:
            _umoci("new", "--image", image)
            _umoci("config", "--image", image, *common, *recipe.config)
        if recipe.files or recipe.links:
            tree = work / f"tree-{i}"
            _write_tree(tree, recipe)
            _umoci("insert", "--image", image, str(tree), "/")
    _umoci("gc", "--layout", str(layout))
    shutil.rmtree(work)
    stamp.touch()
    return layout


def push_all(layout: Path, registry_addr: str) -> None:
    """Copy every image to the registry at ``registry_addr`` (plain HTTP) under its
    mirror path.  Run it where that address is reachable (the node's netns)."""
    for name, recipe in recipes(b"", b"").items():
        dest = f"docker://{registry_addr}/{repository_path(name)}"
        r = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                            f"oci:{layout}:{recipe.tag}", dest], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"skopeo copy {recipe.tag} to {dest}: {r.stderr.strip()}")
