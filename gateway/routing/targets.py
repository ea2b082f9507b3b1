"""Upstream targets: the frozen value the forward stage sends to, and the checks on what
an operator may configure (URL scheme and host, extra headers, names).

The same checks run when an operator adds a target (CLI, admin functions) and when the
catalog is loaded, so a row written by other means, or made invalid by a narrower host
allow-list, is skipped rather than called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Headers the gateway sets itself; an extra header may not replace them (the credential
# has its own field so that it is never stored in clear).
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "accept",
        "accept-encoding",
        "x-request-id",
        "cookie",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 §5.6.2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Target:
    """One upstream of a model, as loaded from the catalog, ready to be called."""

    model: str  # the catalog's name
    name: str
    url: str
    upstream_model: str
    weight: int
    # Every header sent to this upstream, credential included: kept out of repr and logs.
    headers: Mapping[str, str] = field(repr=False, compare=False)
    # Why this target cannot be used (credential unresolvable, host not allowed), or None.
    problem: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies the target across catalog reloads (its health is kept by it)."""
        return (self.model, self.name, self.url, self.upstream_model)


HTTP_SCHEMES = ("http", "https")


def check_target_url(
    url: str, *, allowed_hosts: Sequence[str] = (), allowed_schemes: Sequence[str] = HTTP_SCHEMES
) -> str:
    """The URL, if it can be a target's base URL under the operator's allow-lists
    (`upstream.allowed_hosts`, `upstream.allowed_schemes`); ValueError saying why not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        # .port raises ValueError for a port that is not a number in range.
        usable = parts.scheme.lower() in ("http", "https") and bool(host)
        usable = usable and (parts.port is None or parts.port > 0)
    except ValueError:
        usable, host = False, None
    if not usable:
        raise ValueError(
            f"upstream must be an http(s) URL with a host, e.g. http://vllm:8000/v1; got {url!r}"
        )
    if parts.username is not None or parts.password is not None:
        # It would be stored in clear and shown in lists; use a credential reference.
        raise ValueError("upstream URL must not carry credentials; use --credential")
    if parts.query or parts.fragment:
        raise ValueError("upstream URL must not have a query or fragment (paths are appended)")
    if parts.scheme.lower() not in allowed_schemes:
        raise ValueError(
            f"upstream scheme {parts.scheme.lower()!r} is not in upstream.allowed_schemes"
        )
    if allowed_hosts and not host_allowed(host or "", allowed_hosts):
        raise ValueError(f"upstream host {host!r} is not in upstream.allowed_hosts")
    return url


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Exact match, or a `*.example.com` entry matching any subdomain (not the apex)."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Extra headers, lower-cased, if each is a valid and not reserved header."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.lower()
        if not _TOKEN.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if lname in RESERVED_HEADERS:
            raise ValueError(f"header {lname!r} is set by the gateway and cannot be overridden")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {lname!r} must be a single-line string")
        out[lname] = value
    return out


def check_target_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"target name {name!r} must be 1-100 letters, digits, '.', '_', ':' or '-'"
        )
    return name


def default_target_name(url: str) -> str:
    """`host:port` (or `host`) of the URL: a readable name in audit rows and metrics."""
    parts = urlsplit(url)
    host, port = parts.hostname or "upstream", parts.port
    return (f"{host}:{port}" if port else host)[:100]
