"""The study note's lab as working commands (see docs/tutorial.md).

Modules: rootfs (a rootfs from host binaries), chroot, namespaces (unshare,
nsenter), cgtool (libcgroup-like tools over v1 and v2), layers (overlay
provenance), explain (the --explain printer, importable from the runtime).
Importing this package imports nothing else.
"""
