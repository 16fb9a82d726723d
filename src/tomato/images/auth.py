"""Registry credentials (docker's config.json format) and WWW-Authenticate parsing.

``tomato login`` stores ``{"auths": {HOST: {"auth": base64(user:password)}}}`` in a
file created 0600 (written to a temp file, fsynced and renamed, never readable
by others even for a moment).  Docker Hub's key is ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tomato.errors import InvalidArgument

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str]


_PARAM_RE = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` value: ``Bearer realm="…",service="…",scope="…"``."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params = {}
    for m in _PARAM_RE.finditer(rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return Challenge(scheme.lower(), params)


def config_key(host: str) -> str:
    return DOCKER_HUB_KEY if host in ("docker.io", "index.docker.io") else host


class CredentialStore:
    """Reads and writes a docker-format ``config.json``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _load(self) -> dict:  # type: ignore[type-arg]
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise InvalidArgument(f"credentials file {self.path} is not valid json") from err
        return doc if isinstance(doc, dict) else {}

    def _save(self, doc: dict) -> None:  # type: ignore[type-arg]
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config-", dir=self.path.parent)  # created 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent="\t")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def get(self, host: str) -> Credentials | None:
        auths = self._load().get("auths") or {}
        entry = auths.get(config_key(host))
        if entry is None and host == "docker.io":
            entry = auths.get("docker.io")
        if not entry:
            return None
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as err:
                raise InvalidArgument(f"bad auth entry for {host} in {self.path}") from err
            return Credentials(user, pw)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
        return None

    def put(self, host: str, creds: Credentials) -> None:
        doc = self._load()
        auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        doc.setdefault("auths", {})[config_key(host)] = {"auth": auth}
        self._save(doc)

    def remove(self, host: str) -> bool:
        doc = self._load()
        auths = doc.get("auths") or {}
        if config_key(host) not in auths:
            return False
        del auths[config_key(host)]
        self._save(doc)
        return True


__all__ = ["Credentials", "CredentialStore", "Challenge", "parse_challenge", "config_key"]
