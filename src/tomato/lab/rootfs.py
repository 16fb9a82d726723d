"""A root filesystem from the host's own programs: the study note's first step.

The note copies ``/bin/bash`` and what ``ldd /bin/bash`` lists into a directory
and chroots into it.  Here the list comes from the ELF headers (DT_NEEDED,
PT_INTERP, DT_RPATH/DT_RUNPATH) followed recursively, searched like the
dynamic loader does (rpath, runpath, /etc/ld.so.conf, the default
directories), and every file keeps the path the loader will look for
(/lib/x86_64-linux-gnu, /lib64).  linux-vdso.so.1 is never a file: the kernel
maps it into every process, so there is nothing to copy.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field

from tomato._sys.elf import ElfInfo, is_elf, read_elf
from tomato.errors import InvalidArgument, NotFound

DEFAULT_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                "/lib", "/usr/lib")

VDSO = "linux-vdso.so.1"


@dataclass(frozen=True)
class Library:
    soname: str   # as the DT_NEEDED entry names it
    path: str     # where the loader would find it on this host
    needed_by: str


@dataclass
class Plan:
    """What goes into the rootfs: each program and each library, by host path."""

    programs: list[str] = field(default_factory=list)
    libraries: list[Library] = field(default_factory=list)
    interpreters: list[str] = field(default_factory=list)
    needs: dict[str, list[str]] = field(default_factory=dict)   # ELF path -> its DT_NEEDED
    interpreter_of: dict[str, str] = field(default_factory=dict)  # program -> PT_INTERP

    def files(self) -> list[str]:
        out = list(self.programs) + [lib.path for lib in self.libraries] + self.interpreters
        return list(dict.fromkeys(out))


def ld_so_conf_dirs(conf: str = "/etc/ld.so.conf") -> list[str]:
    """Directories of /etc/ld.so.conf and its ``include`` globs, in order."""
    out: list[str] = []

    def read(path: str, depth: int) -> None:
        if depth > 8:
            return
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(path), pattern)
                for inc in sorted(glob.glob(pattern)):
                    read(inc, depth + 1)
            else:
                out.append(line)

    read(conf, 0)
    return out


def find_program(name: str) -> str:
    """A path as given, or looked up on PATH like a shell does."""
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.exists(path):
            raise NotFound(f"no such program: {name}")
        return path
    found = shutil.which(name)
    if found is None:
        raise NotFound(f"program {name} not found on PATH")
    return found


def _compatible(path: str, like: ElfInfo) -> bool:
    if not is_elf(path):
        return False
    try:
        info = read_elf(path)
    except (InvalidArgument, NotFound):
        return False
    return info.elf_class == like.elf_class and info.machine == like.machine


def _expand(entry: str, origin: str) -> str:
    for token in ("$ORIGIN", "${ORIGIN}"):
        entry = entry.replace(token, origin)
    return entry


def search_dirs(obj: ElfInfo, conf_dirs: Iterable[str]) -> list[str]:
    """The loader's order: DT_RPATH (ignored when DT_RUNPATH exists), DT_RUNPATH,
    then the cache's directories (ld.so.conf) and the defaults."""
    origin = os.path.dirname(obj.path)
    dirs = [] if obj.runpath else [_expand(d, origin) for d in obj.rpath]
    dirs += [_expand(d, origin) for d in obj.runpath]
    dirs += list(conf_dirs) + list(DEFAULT_DIRS)
    return list(dict.fromkeys(dirs))


def resolve(programs: Iterable[str], conf_dirs: Iterable[str] | None = None) -> Plan:
    """Every file the programs need, breadth-first, as ldd lists them."""
    conf = list(ld_so_conf_dirs() if conf_dirs is None else conf_dirs)
    plan = Plan()
    seen: set[str] = set()
    queue: list[ElfInfo] = []
    for name in programs:
        path = find_program(name)
        if not is_elf(path):
            raise InvalidArgument(f"{path} is not an ELF program (a script needs its "
                                  f"interpreter: give that instead)")
        info = read_elf(path)
        plan.programs.append(path)
        queue.append(info)
    while queue:
        obj = queue.pop(0)
        plan.needs[obj.path] = [n for n in obj.needed if n != VDSO]
        if obj.interpreter:
            plan.interpreter_of[obj.path] = obj.interpreter
        if obj.interpreter and obj.interpreter not in plan.interpreters:
            if not os.path.exists(obj.interpreter):
                raise NotFound(f"{obj.path} needs the loader {obj.interpreter}, "
                               f"which this host does not have")
            plan.interpreters.append(obj.interpreter)
        loader_names = {os.path.basename(i) for i in plan.interpreters}
        for soname in obj.needed:
            if soname in seen or soname == VDSO:
                continue
            seen.add(soname)
            if soname in loader_names:
                continue  # libc's DT_NEEDED on the loader: ldd shows it once, as the loader
            path = _find_library(soname, obj, conf)
            plan.libraries.append(Library(soname, path, obj.path))
            queue.append(read_elf(path))
    return plan


def _find_library(soname: str, obj: ElfInfo, conf: list[str]) -> str:
    if "/" in soname:
        if _compatible(soname, obj):
            return soname
        raise NotFound(f"{obj.path} needs {soname}, which is missing")
    for d in search_dirs(obj, conf):
        candidate = os.path.normpath(os.path.join(d, soname))
        if _compatible(candidate, obj):
            return candidate
    raise NotFound(f"{obj.path} needs {soname}, which is in none of the loader's directories")


def copy_into(plan: Plan, into: str) -> list[tuple[str, str]]:
    """Copy each file (its content, symlinks followed) to the same path under ``into``."""
    root = os.path.abspath(into)
    os.makedirs(root, exist_ok=True)
    done = []
    for src in plan.files():
        dest = os.path.join(root, src.lstrip("/"))
        parent = os.path.dirname(dest)
        # A directory on the way must be a real directory of the new rootfs, never a
        # symlink out of it (the host's /lib -> usr/lib is not copied).
        _mkdirs_inside(root, parent)
        if os.path.lexists(dest):
            os.unlink(dest)
        shutil.copy2(src, dest)
        done.append((src, dest))
    for d in ("proc", "dev", "tmp", "sys"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    return done


def _mkdirs_inside(root: str, directory: str) -> None:
    rel = os.path.relpath(directory, root)
    cur = root
    for part in [] if rel == "." else rel.split(os.sep):
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            raise InvalidArgument(f"{cur} is a symlink inside the rootfs; refusing to copy "
                                  f"through it")
        if not os.path.isdir(cur):
            os.mkdir(cur, 0o755)


def tree_lines(plan: Plan) -> list[str]:
    """Which program needs which library, as a tree (ldd lists them flat): each
    library's own needs are drawn where it first appears, later it is "(above)"."""
    path_of = {lib.soname: lib.path for lib in plan.libraries}
    loaders = {os.path.basename(i) for i in plan.interpreters}
    shown: set[str] = set()
    lines: list[str] = []

    def draw(obj: str, prefix: str) -> None:
        kids = [n for n in plan.needs.get(obj, []) if n in loaders or n in path_of]
        interp = plan.interpreter_of.get(obj) if obj in plan.programs else None
        for i, soname in enumerate(kids + ([interp] if interp else [])):
            last = i == len(kids) - (0 if interp else 1)
            branch, below = ("└── ", "    ") if last else ("├── ", "│   ")
            if soname == interp:
                lines.append(f"{prefix}{branch}{interp} (the dynamic loader: PT_INTERP)")
            elif soname in loaders:
                lines.append(f"{prefix}{branch}{soname} (the dynamic loader)")
            elif path_of[soname] in shown:
                lines.append(f"{prefix}{branch}{soname} (above)")
            else:
                shown.add(path_of[soname])
                lines.append(f"{prefix}{branch}{soname} => {path_of[soname]}")
                draw(path_of[soname], prefix + below)

    for program in plan.programs:
        lines.append(program)
        if not plan.needs.get(program) and program not in plan.interpreter_of:
            lines.append("└── (statically linked: nothing else to copy)")
        else:
            draw(program, "")
    return lines


def ldd_lines(plan: Plan) -> list[str]:
    """What ``ldd`` would print for the whole set (without load addresses)."""
    lines = [f"{VDSO} (skipped: the kernel maps it into every process)"]
    for lib in plan.libraries:
        lines.append(f"{lib.soname} => {lib.path}")
    for interp in plan.interpreters:
        lines.append(f"{interp} (the dynamic loader)")
    if not plan.libraries and not plan.interpreters:
        lines = ["statically linked: nothing else to copy"]
    return lines


__all__ = ["Library", "Plan", "copy_into", "find_program", "ld_so_conf_dirs", "ldd_lines",
           "resolve", "search_dirs", "tree_lines"]
