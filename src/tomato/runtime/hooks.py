"""OCI hooks: each runs with the container's state JSON on stdin, with a timeout."""

from __future__ import annotations

import subprocess

from tomato.errors import TomatoError
from tomato.oci.spec import Hook


class HookFailed(TomatoError):
    pass


def run_hooks(kind: str, hooks: tuple[Hook, ...], state_json: str) -> None:
    """Run every hook of one kind in order; the first failure raises HookFailed."""
    for hook in hooks:
        run_hook(kind, hook, state_json)


def run_hook(kind: str, hook: Hook, state_json: str) -> None:
    argv = list(hook.args) if hook.args else [hook.path]
    # As runc (Go's exec with a nil Env): a hook without env inherits ours.
    env = dict(e.partition("=")[::2] for e in hook.env) if hook.env else None
    try:
        proc = subprocess.Popen(argv, executable=hook.path, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
    except OSError as err:
        raise HookFailed(f"{kind} hook {hook.path}: {err.strerror}") from err
    try:
        out, err_out = proc.communicate(state_json.encode(), timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HookFailed(f"{kind} hook {hook.path} timed out after {hook.timeout}s") from None
    if proc.returncode != 0:
        detail = (err_out or out).decode(errors="replace").strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        raise HookFailed(f"{kind} hook {hook.path} exited with status {proc.returncode}{tail}")


__all__ = ["run_hooks", "run_hook", "HookFailed"]
