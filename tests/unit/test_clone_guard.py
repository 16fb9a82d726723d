"""libc.clone refuses to clone beside another Python thread (the ctypes call releases
the GIL: a thread taking it would leave the child waiting for it forever)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PROGRAM = f"""
import os, sys, threading, time
sys.path.insert(0, {str(SRC)!r})
from tomato._sys import libc
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
try:
    pid = libc.clone(0)
except RuntimeError as err:
    print("refused:", err)
else:
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("cloned")
child = os.fork()  # the thread stays behind: the forked child is alone, and may clone
if child == 0:
    try:
        grandchild = libc.clone(0)
    except RuntimeError:
        os._exit(9)
    if grandchild == 0:
        os._exit(5)
    os._exit(os.waitstatus_to_exitcode(os.waitpid(grandchild, 0)[1]))
print("forked child:", os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
stop.set()
t.join()
pid = libc.clone(0)  # alone again: allowed
if pid == 0:
    os._exit(7)
print("alone:", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_clone_beside_a_thread_is_refused() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[0].startswith("refused: clone() with 1 other Python thread(s) running")
    assert out[1:] == ["forked child: 5", "alone: 7"]
