"""Image references parsed the way Docker does.

``busybox`` → ``docker.io/library/busybox:latest``;
``host:port/ns/name:tag@sha256:…`` keeps its registry, tag and digest.
The grammar is distribution's ``reference`` package: a first path component is
a registry host only if it contains ``.`` or ``:``, is ``localhost``, or has an
upper-case letter (so ``Foo/bar`` is a host that is then refused).
"""

from __future__ import annotations

import re

from tomato.errors import InvalidArgument
from tomato.records import record as dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_ID_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain/path`` plus an optional tag and digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The short form Docker prints: ``busybox``, ``user/app``, ``host:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            prefix = OFFICIAL_NAMESPACE + "/"
            if self.path.startswith(prefix) and "/" not in self.path[len(prefix):]:
                return self.path[len(prefix):]
            return self.path
        return self.repository

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        s = self.familiar_repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"
                   and name[:i].lower() == name[:i]):
        domain, rest = DEFAULT_DOMAIN, name
    else:
        domain, rest = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = f"{OFFICIAL_NAMESPACE}/{rest}"
    return domain, rest


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text``; add ``:latest`` when it has neither tag nor digest.

    Raises InvalidArgument with Docker's wording for malformed references.
    """
    if not text:
        raise InvalidArgument("invalid reference format: empty reference")
    if _ID_RE.match(text):
        # A bare 64-hex string is an image ID, never a repository name.
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    remainder = text
    digest = None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: bad digest in {text!r}")
        if digest.startswith("sha256:") and not _SHA256_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: bad sha256 digest in {text!r}")
    tag = None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: bad tag in {text!r}")
    if not remainder:
        raise InvalidArgument(f"invalid reference format: {text!r}")
    domain, path = _split_domain(remainder)
    if not _DOMAIN_RE.match(domain):
        raise InvalidArgument(f"invalid reference format: bad registry host in {text!r}")
    if path.lower() != path:
        raise InvalidArgument(
            f"invalid reference format: repository name ({path}) must be lowercase")
    for component in path.split("/"):
        if not _COMPONENT_RE.match(component):
            raise InvalidArgument(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(path) > NAME_MAX:
        raise InvalidArgument(f"invalid reference format: repository name too long in {text!r}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def parse_repository(text: str) -> Reference:
    """A repository name without tag or digest (for ``tomato push`` targets, ``images REPO``)."""
    ref = parse(text, default_tag=False)
    if ref.digest:
        raise InvalidArgument(f"a repository name is needed, not a digest: {text!r}")
    return ref


def is_image_id(text: str) -> bool:
    """Whether ``text`` looks like a (possibly short, possibly sha256:-prefixed) image ID."""
    t = text.removeprefix("sha256:")
    return bool(re.fullmatch(r"[a-f0-9]{4,64}", t))


__all__ = ["Reference", "parse", "parse_repository", "is_image_id", "DEFAULT_DOMAIN"]
