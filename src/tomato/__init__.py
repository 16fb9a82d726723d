"""Tomato: a container engine built directly on the Linux kernel's parts.

Layers (lower never imports higher):
    0  errors, _sys         stdlib only
    1  oci                  specs and state, parsing and validation, no I/O
    2  cgroups, images, network
    3  runtime              OCI runtime core
    4  engine               Docker semantics
    5  api, cli             edges
"""

__version__ = "0.1.0"
