"""Token usage of a response, for its outcome event: from the upstream's own `usage`
object, or, for a stream that carried none, counted from its content chunks.

Framework-free; the API layer feeds it what it sends. Numbers from the upstream are
checked (non-negative integers below 2^53): a misbehaving upstream cannot make the audit
event unwritable.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.audit.canonical import MAX_SAFE_INT
from gateway.audit.event import Usage

_PROMPT = ("prompt_tokens", "input_tokens")  # chat/completions, responses
_COMPLETION = ("completion_tokens", "output_tokens")


def parse_usage(raw: Any) -> Usage | None:
    """An OpenAI `usage` object as a `Usage`, or None if it is not one."""
    if not isinstance(raw, dict):
        return None
    prompt = _count(raw, _PROMPT)
    completion = _count(raw, _COMPLETION)
    if prompt is None and completion is None:
        return None
    prompt, completion = prompt or 0, completion or 0
    total = _count(raw, ("total_tokens",))
    return Usage(prompt, completion, total if total is not None else prompt + completion)


def usage_from_body(body: bytes) -> Usage | None:
    """The `usage` of a whole JSON response (chat, completions, embeddings, responses)."""
    if b'"usage"' not in body:
        return None  # most bodies without usage are skipped without parsing
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parse_usage(doc.get("usage")) if isinstance(doc, dict) else None


class StreamUsage:
    """Fed an SSE body chunk by chunk: the last `usage` object seen, else a count of the
    data events that carried content (one token each, roughly: source "counted")."""

    def __init__(self) -> None:
        self._pending = b""
        self._usage: Usage | None = None
        self._content_events = 0

    def feed(self, chunk: bytes) -> None:
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line)

    def result(self) -> Usage | None:
        if self._pending:
            self._line(self._pending)
            self._pending = b""
        if self._usage is not None:
            return self._usage
        if self._content_events:
            return Usage(0, self._content_events, self._content_events, source="counted")
        return None

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        if b'"usage":{' in line or b'"usage": {' in line:
            try:
                doc = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return
            if isinstance(doc, dict) and (found := parse_usage(doc.get("usage"))) is not None:
                self._usage = found
        elif b'"content":"' in line and b'"content":""' not in line:
            self._content_events += 1


def _count(raw: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = raw.get(name)
        if type(value) is int and 0 <= value <= MAX_SAFE_INT:
            return value
    return None
