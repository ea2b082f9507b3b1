"""`Usage`, and reading it from an upstream's own `usage` object.

Chat, legacy completions and embeddings report `prompt_tokens` / `completion_tokens`;
the Responses API reports `input_tokens` / `output_tokens` (top level, or under
`response` in its stream events). Both shapes become one `Usage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. `estimated`: counted by the gateway, the upstream gave none."""

    prompt: int
    completion: int
    total: int
    estimated: bool = False

    @classmethod
    def of(cls, prompt: int, completion: int, *, estimated: bool = False) -> Usage:
        return cls(prompt, completion, prompt + completion, estimated)


def read_usage(doc: Any) -> Usage | None:
    """The `usage` of a parsed response or event, in either shape; None if it has none."""
    if not isinstance(doc, dict):
        return None
    found = doc.get("usage")
    if found is None and isinstance(doc.get("response"), dict):
        found = doc["response"].get("usage")  # Responses API stream events
    return _figures(found)


def _figures(obj: Any) -> Usage | None:
    if not isinstance(obj, dict):
        return None
    prompt = _count(obj.get("prompt_tokens", obj.get("input_tokens")))
    completion = _count(obj.get("completion_tokens", obj.get("output_tokens", 0)))
    if prompt is None or completion is None:
        return None
    total = _count(obj.get("total_tokens"))
    return Usage(prompt, completion, prompt + completion if total is None else total)


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None


def usage_in_body(body: bytes) -> Usage | None:
    """The usage of a whole JSON response body.

    The `usage` object is read from the end of the body, where upstreams put it, so a long
    body (embeddings: thousands of floats) is not parsed whole on every call; when that
    fails the whole body is parsed. Inside a JSON string a quote is always escaped, so
    `"usage"` with bare quotes can only be a key.
    """
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    start = body.find(b"{", at)
    if start >= 0 and body[at + 7 : start].strip() == b":":
        found = _object_at(body, start)
        if found is not None:
            return found
    try:
        return read_usage(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def _object_at(body: bytes, start: int) -> Usage | None:
    """The usage object starting at `start`: each `}` after it is tried as its end (the
    object nests at most a level or two of `*_details`), a few at most."""
    end = start
    for _ in range(8):
        end = body.find(b"}", end + 1)
        if end < 0:
            return None
        try:
            return _figures(orjson.loads(body[start : end + 1]))
        except orjson.JSONDecodeError:
            continue
    return None
