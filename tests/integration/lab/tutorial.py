"""Run the command blocks of docs/tutorial.md and compare what they print.

Format of the tutorial (kept simple so a reader sees a terminal session):

- Only ```` ```console ```` fences are run.  In them, a line starting with ``$ ``
  is a command (a trailing backslash continues it); the lines up to the next
  command are what it prints (stdout and stderr together).
- ``...`` alone on a line matches any number of lines (output that depends on
  the machine, e.g. a long list of libraries); ``[...]`` inside a line matches
  any text (ids, pids, times, percentages).
- Paths under ``/tmp/tomato-lab`` are rewritten to a fresh directory of the
  test, and the cgroup name ``tomato-lab`` to a unique one, so runs never meet.

Used by test_tutorial.py, and by hand to see the real output of every block:
``python tests/integration/lab/tutorial.py docs/tutorial.md`` (as root).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

LAB_DIR = "/tmp/tomato-lab"
LAB_CGROUP = "tomato-lab"


@dataclass
class Step:
    line: int          # 1-based line of the command in the markdown
    command: str
    expected: list[str]


def parse(markdown: str) -> list[Step]:
    steps: list[Step] = []
    in_console = False
    current: Step | None = None
    pending = ""
    for no, raw in enumerate(markdown.splitlines(), 1):
        if raw.startswith("```"):
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
    return steps


def _line_matches(pattern: str, line: str) -> bool:
    if "[...]" not in pattern:
        return pattern == line
    regex = ".*".join(re.escape(part) for part in pattern.split("[...]"))
    return re.fullmatch(regex, line) is not None


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected`` with ``...`` lines and ``[...]`` wildcards."""
    if not expected:
        return not actual
    head = expected[0]
    if head == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and _line_matches(head, actual[0]) and matches(expected[1:], actual[1:])


def substitute(text: str, lab_dir: str, cgroup: str) -> str:
    text = text.replace(LAB_DIR, lab_dir)
    return re.sub(r"(?<![\w-])" + re.escape(LAB_CGROUP) + r"(?![\w-])", cgroup, text)


def run(step: Step, lab_dir: str, cgroup: str, env: dict[str, str],
        timeout: float = 120) -> list[str]:
    cmd = substitute(step.command, lab_dir, cgroup)
    p = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=env, cwd=lab_dir, timeout=timeout)
    return p.stdout.splitlines()


def main(path: str) -> int:
    import tempfile
    import uuid
    steps = parse(open(path).read())
    lab = tempfile.mkdtemp(prefix="tomato-lab-run-")
    cgroup = f"tomato-lab-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, TOMATO_ROOT=os.path.join(lab, "root"),
               PATH=os.path.dirname(sys.executable) + ":" + os.environ["PATH"])
    bad = 0
    for s in steps:
        out = run(s, lab, cgroup, env)
        shown = [line.replace(lab, LAB_DIR).replace(cgroup, LAB_CGROUP) for line in out]
        ok = matches(s.expected, shown)
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} line {s.line}: $ {s.command}")
        if not ok:
            for line in shown:
                print("    " + line)
    print(f"{len(steps) - bad}/{len(steps)} match; scratch dir {lab}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
