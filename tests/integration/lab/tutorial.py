"""Run the command blocks of docs/tutorial.md and check what they print and how they exit.

Format of the tutorial (kept simple so a reader sees a terminal session):

- Only ```` ```console ```` fences are run (also inside ``<details>``, where the
  exercises keep their answers).  In them, a line starting with ``$ `` is a
  command (a trailing backslash continues it); the lines up to the next command
  are all it prints, on stdout and stderr, as a terminal shows them.
- A command exits 0 unless it ends with the comment ``# exit N``.
- ``[...]`` inside a line matches any text within that line (ids, pids, times).
- ``...`` alone on a line matches any number of lines the command wrote to
  *stdout* (a machine's list of libraries); never a line of stderr, and never at
  the end of a command's output: a test that cannot fail is a defect.
- Every line a command prints must be shown: its stdout lines in order, its
  stderr lines in order (how the two interleave on a terminal is not checked).
- A file a command draws (``--plot FILE``, ``--png FILE``) must be a PNG of a
  sane size.
- Paths under ``/tmp/tomato-lab`` are rewritten to a fresh directory of the
  test, the cgroup name ``tomato-lab`` and the user ``learner`` to unique ones,
  so runs never meet.

Used by test_tutorial.py, and by hand to see the real output of every block
(as root): ``python tests/integration/lab/tutorial.py docs/tutorial.md``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LAB_DIR = "/tmp/tomato-lab"
LAB_CGROUP = "tomato-lab"
LAB_USER = "learner"
SRC = Path(__file__).resolve().parents[3] / "src"
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Step:
    line: int          # 1-based line of the command in the markdown
    command: str
    expected: list[str]

    @property
    def exit_code(self) -> int:
        m = re.search(r"#\s*exit\s+(\d+)\s*$", self.command)
        return int(m.group(1)) if m else 0


@dataclass
class Result:
    exit_code: int
    stdout: list[str]
    stderr: list[str]


def parse(markdown: str) -> list[Step]:
    steps: list[Step] = []
    in_console = False
    current: Step | None = None
    pending = ""
    for no, raw in enumerate(markdown.splitlines(), 1):
        if raw.strip().startswith("```"):
            if not in_console and raw.strip() == "```console":
                in_console = True
            elif in_console:
                in_console = False
                current = None
            continue
        if not in_console:
            continue
        if pending:
            pending += "\n" + raw
            if not raw.endswith("\\"):
                assert current is not None
                current.command = pending
                pending = ""
            continue
        if raw.startswith("$ "):
            current = Step(no, raw[2:], [])
            steps.append(current)
            if raw.endswith("\\"):
                pending = raw[2:]
            continue
        if current is None:
            raise ValueError(f"line {no}: output before any command")
        current.expected.append(raw)
    for s in steps:
        if s.expected and s.expected[-1] == "...":
            raise ValueError(f"line {s.line}: '...' ends the output of $ {s.command}: "
                             f"it would match anything")
    return steps


def _line_matches(pattern: str, line: str) -> bool:
    if "[...]" not in pattern:
        return pattern == line
    regex = ".*".join(re.escape(part) for part in pattern.split("[...]"))
    return re.fullmatch(regex, line) is not None


def matches(expected: list[str], stdout: list[str], stderr: list[str] | None = None) -> bool:
    """Whether ``expected`` is ``stdout`` and ``stderr`` interleaved (each in its own
    order), with ``[...]`` in a line and ``...`` standing for stdout lines."""
    err = stderr or []
    exp = tuple(expected)

    @cache
    def fit(i: int, j: int, k: int) -> bool:
        if i == len(exp):
            return j == len(stdout) and k == len(err)
        if exp[i] == "...":
            return fit(i + 1, j, k) or (j < len(stdout) and fit(i, j + 1, k))
        return ((j < len(stdout) and _line_matches(exp[i], stdout[j]) and fit(i + 1, j + 1, k))
                or (k < len(err) and _line_matches(exp[i], err[k]) and fit(i + 1, j, k + 1)))

    return fit(0, 0, 0)


class Lab:
    """Where a run of the tutorial happens, and the names it substitutes."""

    def __init__(self, directory: str, cgroup: str, user: str, env: dict[str, str]) -> None:
        self.dir, self.cgroup, self.user, self.env = directory, cgroup, user, env

    def substitute(self, text: str) -> str:
        text = text.replace(LAB_DIR, self.dir)
        text = re.sub(r"(?<![\w/-])" + re.escape(LAB_CGROUP) + r"(?![\w-])", self.cgroup, text)
        return re.sub(r"(?<![\w/-])" + re.escape(LAB_USER) + r"(?![\w-])", self.user, text)

    def shown(self, line: str) -> str:
        """A line of real output as the tutorial writes it."""
        return line.replace(self.dir, LAB_DIR).replace(self.cgroup, LAB_CGROUP) \
            .replace(self.user, LAB_USER)

    def run(self, step: Step, timeout: float = 120) -> Result:
        cmd = self.substitute(step.command)
        cwd = self.dir if os.path.isdir(self.dir) else "/"
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=self.env,
                           cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(p.returncode, [self.shown(x) for x in p.stdout.splitlines()],
                      [self.shown(x) for x in p.stderr.splitlines()])

    def check(self, step: Step) -> str | None:
        """Run ``step``; None if it did what the tutorial shows, else what went wrong."""
        r = self.run(step)
        problems = []
        if r.exit_code != step.exit_code:
            problems.append(f"exit status {r.exit_code}, the tutorial says {step.exit_code}")
        if not matches(step.expected, r.stdout, r.stderr):
            problems.append("output differs")
        problems += [bad for f in pictures(self.substitute(step.command))
                     if (bad := check_png(f)) is not None]
        if not problems:
            return None
        return (f"line {step.line}: $ {step.command}\n  " + "; ".join(problems) +
                "\n  expected:\n" + "".join(f"    {e}\n" for e in step.expected) +
                "  stdout:\n" + "".join(f"    {o}\n" for o in r.stdout) +
                "  stderr:\n" + "".join(f"    {o}\n" for o in r.stderr))


def pictures(command: str) -> list[str]:
    """The PNG files a command is asked to draw."""
    return re.findall(r"--(?:plot|png)[= ](\S+\.png)", command)


def check_png(path: str) -> str | None:
    """None if ``path`` is a PNG of a sane size (a picture, not an empty canvas)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        return f"{path}: {err.strerror}"
    if not data.startswith(PNG):
        return f"{path} is not a PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not (200 <= width <= 4000 and 200 <= height <= 4000 and 10_000 <= len(data) <= 5_000_000):
        return f"{path}: {width}x{height}, {len(data)} bytes is not a sane picture"
    return None


def unique_names() -> tuple[str, str]:
    """A cgroup and a user name of this run, as long as the tutorial's (``tomato-lab``,
    ``learner``): the explain summary wraps its lines by length."""
    import uuid
    tag = uuid.uuid4().hex
    return f"tl{tag[:8]}", f"l{tag[8:14]}"


def user_wrapper(bin_dir: str) -> None:
    """``tomato`` for whoever runs it: root gets the venv's CLI; another user (the
    user namespace step) this source tree with the system's python, since the venv's
    interpreter may be unreadable to others."""
    os.makedirs(bin_dir, exist_ok=True)
    venv = Path(sys.executable).parent / "tomato"
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r}); "
            "from tomato.cli.engine import main; sys.exit(main())")
    path = os.path.join(bin_dir, "tomato")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nif [ "$(id -u)" = 0 ]; then exec {venv} "$@"; fi\n'
                f'exec /usr/bin/python3 -I -B -c "{code}" "$@"\n')
    os.chmod(path, 0o755)
    os.chmod(bin_dir, 0o755)


def cleanup(lab: Lab, root: str, steps: list[Step]) -> list[str]:
    """Whatever a run of the tutorial left, failed half-way or not: containers, mounts
    under the lab directory, the lab's cgroups (processes killed first), the user,
    the engine root's default bridge.  Returns what it had to remove."""
    left: list[str] = []
    tomato = str(Path(sys.executable).parent / "tomato")
    names = sorted({m for s in steps for m in re.findall(r"--name (\S+)", s.command)})
    r = subprocess.run([tomato, "rm", "-f", *names], env=lab.env, capture_output=True,
                       text=True)
    left += [f"container {n}" for n in r.stdout.split()]
    for mount in reversed(_mounts_under(lab.dir)):
        subprocess.run(["umount", "-l", mount], check=False)
        left.append(f"mount {mount}")
    left += _remove_cgroups(lab.cgroup)
    if subprocess.run(["id", lab.user], capture_output=True).returncode == 0:
        subprocess.run(["userdel", lab.user], check=False)
        left.append(f"user {lab.user}")
    if os.path.isdir(lab.dir):
        import shutil
        shutil.rmtree(lab.dir, ignore_errors=True)
        left.append(f"directory {lab.dir}")
    if os.path.exists(os.path.join(root, "tomato.db")):
        sys.path.insert(0, str(SRC))
        from tomato.engine.networks import Networks
        nets = Networks(Path(root))
        subprocess.run(["ip", "link", "delete", nets.default_bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", nets.table], capture_output=True)
    return left


def _mounts_under(directory: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4]
            if target == directory or target.startswith(directory + "/"):
                out.append(target)
    return out


def _remove_cgroups(name: str) -> list[str]:
    """The lab's parent group in every v1 hierarchy and in cgroup2, processes killed."""
    import signal
    import time
    left = []
    tops = [os.path.join(h, name) for h in glob_hierarchies()]
    for top in tops:
        for _ in range(100):  # killed processes leave their group a moment later
            if not os.path.isdir(top):
                break
            for d, _dirs, _files in os.walk(top):
                try:
                    for pid in open(os.path.join(d, "cgroup.procs")).read().split():
                        os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            try:
                for d, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                    os.rmdir(d)
            except OSError:
                time.sleep(0.05)
                continue
            left.append(f"cgroup {top}")
            break
    return left


def glob_hierarchies() -> list[str]:
    import glob
    return [d for d in glob.glob("/sys/fs/cgroup/*") if os.path.isdir(d)] + ["/sys/fs/cgroup"]


def main(path: str) -> int:
    import tempfile
    steps = parse(open(path).read())
    scratch = tempfile.mkdtemp(prefix="tomato-lab-run-")
    os.chmod(scratch, 0o755)
    user_wrapper(os.path.join(scratch, "bin"))
    root = os.path.join(scratch, "root")
    env = dict(os.environ, TOMATO_ROOT=root,
               PATH=os.path.join(scratch, "bin") + ":" + os.path.dirname(sys.executable)
               + ":" + os.environ["PATH"])
    lab = Lab(os.path.join(scratch, "lab"), *unique_names(), env)
    bad = 0
    try:
        for s in steps:
            problem = lab.check(s)
            bad += problem is not None
            print(f"{'ok ' if problem is None else 'BAD'} line {s.line}: $ {s.command}")
            if problem:
                print(problem)
    finally:
        for what in cleanup(lab, root, steps):
            print(f"removed what the tutorial left: {what}")
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{len(steps) - bad}/{len(steps)} as shown")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
