"""What goes into the pipeline (`Call`) and what comes out (`Outcome`), framework-free."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from gateway.audit.event import Delivery
from gateway.errors import GatewayError
from gateway.forward.relay import UpstreamStream
from gateway.usage.figures import Usage


@dataclass(frozen=True, slots=True)
class Call:
    """One caller's request, as much of it as the stages need."""

    endpoint: str  # an `Endpoint` name, or "models", "models.retrieve", "unmatched"
    authorization: str | None
    # Completes when the caller disconnects; used to cancel upstream work for nobody.
    disconnected: Callable[[], Awaitable[None]]
    body: AsyncIterable[bytes] | None = None
    declared_length: int | None = None
    model_id: str | None = None  # for models.retrieve
    refusal: GatewayError | None = None  # for "unmatched": what the router decided (404/405)
    # What a DPoP proof (RFC 9449) is checked against: the request's method and URL (the
    # gateway's public base, `Settings.issuer`, plus this path: never the Host header).
    method: str = "POST"
    path: str = ""
    dpop: str | None = None  # the `DPoP` header
    source: str | None = None  # the caller's address, for the audit record
    user_agent: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The decision's result; the audit record is made from `allow`, `status`, `reasons`."""

    decision_id: str
    allow: bool
    status: int
    reasons: tuple[str, ...]
    # Extra response headers (the caller's remaining limits on an admitted call).
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused(Outcome):
    error: GatewayError


# Called by the API layer once the response was sent: logs the outcome event.
Report = Callable[[Delivery], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered(Outcome):
    """A whole JSON body from the upstream (success, or its 4xx passed through)."""

    body: bytes
    report: Report | None = None
    # What the call consumed, as metered (gateway/usage), for the outcome event.
    usage: Usage | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Streamed(Outcome):
    stream: UpstreamStream
    report: Report | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed(Outcome):
    """Model names the caller may use; `single` for `/v1/models/{id}`."""

    models: tuple[str, ...] = field(default_factory=tuple)
    single: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Gone(Outcome):
    """The caller left before the answer was ready; nobody is there to answer."""
