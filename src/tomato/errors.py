"""One tree of typed errors for all of Tomato.

    TomatoError                 root; str(err) is a one-line, lower-case message
    ├── NotFound                no such container, image, file, namespace ...
    ├── AlreadyExists           an id, name or path is taken
    ├── InvalidArgument         bad input: config, flag value, reference, spec field
    ├── Conflict                the object is in the wrong state for the operation
    ├── PermissionDenied        the kernel or policy refused
    └── Unavailable             a needed kernel feature, tool or service is missing
        └── NoSpace             the filesystem holding the engine's root is full

Callers chain the cause with ``raise ... from err``.  Edges (the CLIs, the API)
map categories to exit codes and HTTP statuses; library code never prints.
"""

from __future__ import annotations


class TomatoError(Exception):
    """Root of every error Tomato raises on purpose."""

    #: Docker-like exit code used by the ``tomato`` CLI for this category.
    exit_code = 125


class NotFound(TomatoError):
    pass


class AlreadyExists(TomatoError):
    pass


class InvalidArgument(TomatoError):
    pass


class Conflict(TomatoError):
    pass


class PermissionDenied(TomatoError):
    pass


class Unavailable(TomatoError):
    pass


class NoSpace(Unavailable):
    """"no space left on device while <doing what>": reads go on working and deletes
    free space before they record, so a full disk never leaves a container unkillable."""


__all__ = [
    "TomatoError",
    "NotFound",
    "AlreadyExists",
    "InvalidArgument",
    "Conflict",
    "PermissionDenied",
    "Unavailable",
    "NoSpace",
]
