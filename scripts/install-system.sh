#!/bin/sh
# install.sh --system's second half (install.sh has checked root and the packages):
#   install-system.sh PREFIX BINDIR
# Every user runs Tomato from here, so everything is made with the system's
# /usr/bin/python3 (a venv's interpreter under /root is unreadable to others) and
# with umask 022 whatever root's is.  pip's build step (setup.py) builds the C
# programs (tomato-client as `tomato`, tomato-shim, tomato-runtime-front) into
# PREFIX/bin and byte-compiles the sources; the launchers follow a symlink to
# find the interpreter beside them, so BINDIR holds symlinks.
set -eu
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: install-system.sh PREFIX BINDIR" >&2; exit 2; }
prefix=$1 bindir=$2
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path: $prefix" >&2; exit 2 ;; esac
case "$bindir" in /*) ;; *) echo "install.sh: --bin-dir must be an absolute path: $bindir" >&2; exit 2 ;; esac
umask 022
python=/usr/bin/python3
[ -x "$python" ] || { echo "install.sh: $python not found (apt-get install python3-venv)" >&2; exit 1; }
if [ ! -x "$prefix/bin/python3" ]; then
    "$python" -m venv "$prefix"
fi
# Not editable, not from a wheel cache: the package's files are copied into the
# prefix, readable by all, whatever the permissions of this checkout.
"$prefix/bin/pip" install -q --disable-pip-version-check --no-cache-dir --upgrade \
    --force-reinstall --no-deps . >/dev/null
"$prefix/bin/pip" install -q --disable-pip-version-check --no-cache-dir . >/dev/null
mkdir -p "$bindir"
for prog in tomato tomato-runtime; do
    ln -sfn "$prefix/bin/$prog" "$bindir/$prog"
done
echo "install.sh: tomato installed in $prefix for every user ($bindir/tomato, $bindir/tomato-runtime)" >&2
