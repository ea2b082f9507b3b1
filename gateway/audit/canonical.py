"""An audit event as a transparency-log leaf: RFC 8785 canonical JSON bytes and their hash.

The reference implementation is the `rfc8785` package, but it costs ~90 µs per event
(bench/audit_hash.py), nearly the whole per-request audit budget. orjson with sorted keys
writes the same bytes, ~60x faster, for the values events are made of: objects with
string keys from the Basic Multilingual Plane, strings, booleans, null, and integers of
magnitude below 2^53 (no floats: latencies are integer microseconds). Outside that
domain the two differ (orjson orders non-BMP keys by UTF-8, RFC 8785 by UTF-16; it
writes floats and big integers its own way), so `canonical_bytes` checks the value
domain first (a few µs), falls back to `rfc8785` whenever the output holds a non-BMP
character, and refuses what RFC 8785 would refuse or write differently.
tests/audit/test_canonical.py proves the equality; the offline verifier uses the
reference implementation only, so a divergence could never pass unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

from gateway.audit.tlog import leaf_hash

# I-JSON (RFC 7493) integers: what every JSON reader represents exactly.
MAX_SAFE_INT = 2**53 - 1
# UTF-8 lead bytes of 4-byte sequences: characters beyond U+FFFF.
_NON_BMP = re.compile(rb"[\xf0-\xf4]")


class NotCanonicalizable(ValueError):
    """The value cannot be an event: a float, an integer beyond 2^53, a non-string key."""


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of `event` (fast path, same bytes as the reference)."""
    _check_domain(event)
    out = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    # A UTF-8 lead byte >= 0xF0 starts a character outside the BMP: let the reference
    # implementation order keys by UTF-16 code units, as RFC 8785 §3.2.3 requires.
    if not out.isascii() and _NON_BMP.search(out):
        return reference_canonical_bytes(event)
    return out


def _check_domain(value: Any) -> None:
    # Exact type checks: bool is an int subclass and must stay a JSON boolean; a float
    # (even 1.0) is refused because orjson and RFC 8785 write it differently.
    t = type(value)
    if t is str or t is bool or value is None:
        return
    if t is int:
        _check_int(value)
    elif t is dict:
        _check_items(value.values(), value)
    elif t is list or t is tuple:
        _check_items(value, ())
    else:
        raise NotCanonicalizable(f"{t.__name__} is not an event value (use int, str, bool, None)")


def _check_items(items: Iterable[Any], keys: Iterable[Any]) -> None:
    # The scalars of a container are checked here rather than by a call each: an event is
    # mostly scalars, and a call per value was most of the check's cost (bench/audit_path.py).
    for key in keys:
        if type(key) is not str:
            raise NotCanonicalizable(f"object key {key!r} is not a string")
    for item in items:
        t = type(item)
        if t is str or t is bool or item is None:
            continue
        if t is int:
            _check_int(item)
        elif t is dict:
            _check_items(item.values(), item)
        elif t is list or t is tuple:
            _check_items(item, ())
        else:
            raise NotCanonicalizable(
                f"{t.__name__} is not an event value (use int, str, bool, None)"
            )


def _check_int(value: int) -> None:
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise NotCanonicalizable(f"integer {value} is beyond 2^53")


def reference_canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """RFC 8785 by the `rfc8785` package: slow, independent, used to verify."""
    try:
        return rfc8785.dumps(event)
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalizable(str(exc)) from exc


def event_leaf(event: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(canonical bytes, leaf hash) of one event."""
    data = canonical_bytes(event)
    return data, leaf_hash(data)


def timestamp(ts: datetime) -> str:
    """Event time as RFC 3339 UTC with microseconds, e.g. 2026-11-26T19:43:00.055050Z."""
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        ts = ts.astimezone(UTC)
    if ts.year < 1000:
        # strftime's %Y does not pad years below 1000 here (glibc): keep its exact text.
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), in about half its time (two
    # per model call: the decision's and the outcome's).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (faster than f-string here)
        ts.year,
        ts.month,
        ts.day,
        ts.hour,
        ts.minute,
        ts.second,
        ts.microsecond,
    )
