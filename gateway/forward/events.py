"""An upstream SSE byte stream, event by event, on its way to the caller.

Three jobs that need event boundaries (chunks from the network may split an event):
every event is checked to be what an OpenAI-compatible stream sends (UTF-8, only SSE
fields, `data` that is a JSON object or `[DONE]`) so that a broken upstream never reaches
the caller as garbage (`MalformedStream`); the catalog's model name replaces the
upstream's (`rename`); and a `UsageMeter` reads the event that carries `usage` (dropping it
if the caller did not ask for it). Complete events are relayed as soon as they are whole.
"""

from __future__ import annotations

import re

import orjson

from gateway.forward.rename import rename_json
from gateway.usage.meter import UsageMeter

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_EVENT_END = re.compile(rb"(\r?\n\r?\n)")
# The SSE fields (WHATWG HTML §9.2.6) and comments; OpenAI-compatible servers send `data`
# (and `event: error`), so anything else is a server that is not speaking the protocol.
_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")


class MalformedStream(ValueError):
    """The upstream's stream is not well-formed OpenAI-compatible SSE; `relayed` holds the
    well-formed events that came before the bad one (processed, for the caller)."""

    def __init__(self, why: str, relayed: bytes = b"") -> None:
        super().__init__(why)
        self.relayed = relayed


def first_malformed(block: bytes) -> tuple[int, str] | None:
    """Where the first malformed event of `block` starts, and why; None if all are fine.

    One pass over the lines (a blank line ends an event) and one JSON parse per event
    (about 3 µs an event in all; a regular-expression fast path measured no faster)."""
    try:
        block.decode()
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False  # which event: each one is decoded when it ends
    offset = start = 0  # where the current line, and the current event, begin
    data: list[bytes] = []
    stray = False  # a line of the event that is no SSE field
    for raw in block.split(b"\n"):
        line = raw.removesuffix(b"\r")
        if line:
            if line.startswith(b"data:"):
                # One leading space is part of the framing (SSE strips exactly one).
                data.append(line[5:].removeprefix(b" "))
            elif not line.startswith(_FIELDS):
                stray = True
            offset += len(raw) + 1
            continue
        # A blank line: the event (if there is one) ends here.
        if start < offset and (why := _malformed(block[start:offset], data, stray, utf8)):
            return start, why
        data, stray = [], False
        offset += len(raw) + 1
        start = offset
    if start < len(block) and (why := _malformed(block[start:], data, stray, utf8)):
        return start, why  # the last event, cut off by the stream's end (flush)
    return None


def _malformed(event: bytes, data: list[bytes], stray: bool, utf8: bool) -> str | None:
    if not utf8:
        try:
            event.decode()
        except UnicodeDecodeError:
            return "not UTF-8"
    if stray:
        return "a line that is no SSE field"
    if not data:
        return None
    payload = b"\n".join(data)  # an event's data lines form one payload
    if payload.strip() == b"[DONE]":
        return None
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "data that is not JSON"
    return None if isinstance(doc, dict) else "data that is not a JSON object"


class SseEvents:
    def __init__(self, *, rename_to: str | None, meter: UsageMeter | None) -> None:
        self._name = rename_to
        self._meter = meter
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete events of `chunk` (plus what was pending), processed; keeps the rest."""
        data = self._pending + chunk
        end = max(data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n"))
        if end < 0:
            self._pending = data
            return b""
        end += 4 if data[end : end + 4] == b"\r\n\r\n" else 2
        block, self._pending = data[:end], data[end:]
        return self._block(block)

    def flush(self) -> bytes:
        """Whatever is left when the stream ends (an unterminated last event)."""
        rest, self._pending = self._pending, b""
        return self._block(rest) if rest else b""

    def _block(self, block: bytes) -> bytes:
        if (bad := first_malformed(block)) is not None:
            offset, why = bad
            good = self._events(block[:offset]) if offset else b""
            raise MalformedStream(why, relayed=good)
        return self._events(block)

    def _events(self, block: bytes) -> bytes:
        meter = self._meter
        if meter is not None:
            meter.seen(block)
        metered = meter is not None and _USAGE.search(block) is not None
        if self._name is None and not metered:
            return block
        parts = _EVENT_END.split(block)  # [event, separator, event, separator, ..., rest]
        out: list[bytes] = []
        for i in range(0, len(parts), 2):
            event = self._event(parts[i], metered)
            if event is not None:
                out.append(event)
                if i + 1 < len(parts):
                    out.append(parts[i + 1])
        return b"".join(out)

    def _event(self, event: bytes, metered: bool) -> bytes | None:
        """One event with its data lines renamed; None to drop it."""
        lines = event.split(b"\n")
        for n, line in enumerate(lines):
            if not line.startswith(b"data:"):
                continue
            body = line[5:].strip()
            if not body.startswith(b"{"):
                continue  # "[DONE]" and other non-JSON payloads
            if self._name is not None:
                body = rename_json(body, self._name)
                lines[n] = b"data: " + body + (b"\r" if line.endswith(b"\r") else b"")
            if metered and self._meter is not None and _USAGE.search(body):
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError:
                    continue
                if not self._meter.event(doc):
                    return None
        return b"\n".join(lines)
