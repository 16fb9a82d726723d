"""OCI hooks: each runs with the container's state JSON on stdin, with a timeout.

Which status each kind sees is the spec's (runtime.md, "Lifecycle"):
prestart, createRuntime and createContainer run during `create` ("creating"),
startContainer during `start` before the user's program ("created"),
poststart after it ("running") and poststop after `delete` ("stopped").

A failing prestart/createRuntime/createContainer/startContainer hook fails its
operation with runc's words ("error running hook #N: exit status 3, stdout: ...,
stderr: ..."); a failing poststart or poststop hook is a warning, and the hooks
after it still run (``run_hooks_warning``), as the spec says.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from tomato.errors import TomatoError
from tomato.oci.spec import Hook


class HookFailed(TomatoError):
    pass


def run_hooks(kind: str, hooks: tuple[Hook, ...], state_json: str) -> None:
    """Run every hook of one kind in order; the first failure raises HookFailed."""
    for index, hook in enumerate(hooks):
        run_hook(kind, hook, state_json, index)


def run_hooks_warning(kind: str, hooks: tuple[Hook, ...], state_json: str,
                      warn: Callable[[str], None]) -> None:
    """poststart/poststop: every hook runs; each failure is a warning."""
    for index, hook in enumerate(hooks):
        try:
            run_hook(kind, hook, state_json, index)
        except HookFailed as err:
            warn(str(err))


def _one_line(data: bytes) -> str:
    """A hook's output inside a one-line error: newlines shown as \\n."""
    return data.decode(errors="replace").strip().replace("\r", "").replace("\n", "\\n")


def run_hook(kind: str, hook: Hook, state_json: str, index: int = 0) -> None:
    where = f"error running hook #{index} ({kind} {hook.path})"
    argv = list(hook.args) if hook.args else [hook.path]
    # As runc (Go's exec with a nil Env): a hook without env inherits ours.
    env = dict(e.partition("=")[::2] for e in hook.env) if hook.env else None
    try:
        proc = subprocess.Popen(argv, executable=hook.path, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
    except OSError as err:
        raise HookFailed(f"{where}: {(err.strerror or str(err)).lower()}") from err
    try:
        out, err_out = proc.communicate(state_json.encode(), timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HookFailed(f"{where}: hook ran past specified timeout of "
                         f"{float(hook.timeout or 0):.1f}s") from None
    if proc.returncode != 0:
        status = (f"exit status {proc.returncode}" if proc.returncode > 0
                  else f"signal: {-proc.returncode}")
        raise HookFailed(f"{where}: {status}, stdout: {_one_line(out)}, "
                         f"stderr: {_one_line(err_out)}")


__all__ = ["run_hooks", "run_hooks_warning", "run_hook", "HookFailed"]
