"""Upstream credentials: a reference in the catalog, the secret only in memory.

A target's credential is stored as a reference, `env:NAME` (an environment variable of
the gateway process) or `file:/absolute/path` (a mounted secret, e.g. a Kubernetes
Secret volume), and resolved each time the catalog is loaded, so a rotated file is
picked up within `catalog_ttl_s`. The resolved value is never logged or stored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A credential is one line; a larger file is a mistake (a wrong mount), not a key.
_MAX_FILE_BYTES = 16 * 1024


class CredentialError(Exception):
    """The reference cannot be resolved; the message never contains the secret."""


def check_reference(ref: str) -> str:
    """The reference, if it is well formed; raises ValueError otherwise."""
    kind, _, rest = ref.partition(":")
    if kind == "env" and _ENV_NAME.match(rest):
        return ref
    if kind == "file" and rest.startswith("/"):
        return ref
    # The value is not echoed: an operator who pasted the key itself must not see it
    # printed back (terminal scrollback, CI logs).
    raise ValueError(
        "credential must be a reference, env:VARIABLE or file:/absolute/path, never the key"
    )


def resolve(ref: str) -> str:
    """The secret the reference names; raises CredentialError if it is absent or empty."""
    try:
        check_reference(ref)
    except ValueError as exc:
        raise CredentialError(str(exc)) from None
    kind, _, rest = ref.partition(":")
    if kind == "env":
        value = os.environ.get(rest, "")
        if not value.strip():
            raise CredentialError(f"environment variable {rest} is not set or empty")
        return value.strip()
    path = Path(rest)
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise CredentialError(f"{path} is larger than {_MAX_FILE_BYTES} bytes")
    value = raw.decode("utf-8", errors="replace").strip()
    if not value or "\n" in value or "\r" in value:
        raise CredentialError(f"{path} must hold one non-empty line")
    return value
