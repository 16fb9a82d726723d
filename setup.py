"""The package's build step: what scripts/install.sh used to do by hand, so that
`pip install .` (or a wheel built from it, or `pip install -e .`) gives the fast
paths too.  The metadata is pyproject.toml's.

Beside the launchers of bin/ (`tomato`, `tomato-runtime`: sh/Python polyglots),
the scripts directory gets the C programs, built here:

    tomato-shim           a detached container's monitor in its steady state
    tomato-client         `tomato` through the CLI's fork server (no Python start-up)
    tomato-runtime-front  tomato-runtime's state/kill/delete/... without Python
    tomato-dmz            the container's last execve, from a sealed copy (CVE-2019-5736)

and, when the client was built, `tomato` *is* the client (an ELF: no script's #!
line could name the installed venv's path from inside a wheel) with the Python
launcher beside it as `tomato-launcher`.  Without a C compiler the launchers stay
as they are: everything works, without the fast paths (`tomato version` says so).
pip byte-compiles the installed sources itself.
"""

# ruff: noqa: I001  (distutils after setuptools: it is setuptools' own then)
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from glob import glob

from setuptools import Distribution, setup

from distutils.command.build_scripts import build_scripts  # setuptools' own distutils

HERE = os.path.dirname(os.path.abspath(__file__))

#: program -> its sources (relative to this directory)
C_PROGRAMS = {
    "tomato-shim": ["src/tomato/engine/shim/tomato-shim.c"],
    "tomato-client": ["src/tomato/cli/client/tomato-client.c"],
    "tomato-runtime-front": sorted(glob("src/tomato/runtime/front/*.c", root_dir=HERE)),
    # static: it runs inside the container's root, whose loader must never run in it
    "tomato-dmz": ["src/tomato/runtime/dmz/tomato-dmz.c", "src/tomato/runtime/front/execfail.c"],
}
#: extra compiler flags of a program
C_FLAGS = {"tomato-dmz": ["-static"]}


def compile_program(sources: list[str], out: str, flags: list[str] | None = None) -> bool:
    """``cc -O2 -Wall [flags] -o out sources``; False (and a warning) when that fails."""
    if not sources:
        return False
    cc = os.environ.get("CC", "cc")
    tmp = out + ".new"
    try:
        subprocess.run([cc, "-O2", "-Wall", *(flags or []), "-o", tmp,
                        *(os.path.join(HERE, s) for s in sources)], check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"tomato setup: {os.path.basename(out)} not built ({err}): its fast path "
              "stays off", file=sys.stderr)
        return False
    os.replace(tmp, out)
    return True


class BuildScripts(build_scripts):
    """bin/'s launchers, then the C programs beside them (see the module)."""

    def run(self) -> None:
        super().run()
        self.mkpath(self.build_dir)
        built = {name: compile_program(sources, os.path.join(self.build_dir, name),
                                       C_FLAGS.get(name))
                 for name, sources in C_PROGRAMS.items()}
        if built["tomato-client"]:
            shutil.copy2(os.path.join(HERE, "bin", "tomato"),
                         os.path.join(self.build_dir, "tomato-launcher"))
            shutil.copy2(os.path.join(self.build_dir, "tomato-client"),
                         os.path.join(self.build_dir, "tomato"))


class BinaryDistribution(Distribution):
    """The wheel holds programs built for this machine: not a pure-Python wheel."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_scripts": BuildScripts}, distclass=BinaryDistribution)
