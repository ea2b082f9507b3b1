"""Callers only ever see the catalog's model name, never the upstream's.

A JSON body, and every event of an SSE stream, is rewritten where it names the model:
top-level `model` (chat, completions, embeddings) and `response.model` (Responses API
events). When the two names are equal (the common case) nothing is parsed at all.
"""

from __future__ import annotations

from typing import Any

import orjson


def rename_json(body: bytes, name: str) -> bytes:
    """`body` with the model renamed; a body that is not a JSON object passes unchanged."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    return orjson.dumps(doc) if _rename(doc, name) else body


def _rename(doc: Any, name: str) -> bool:
    if not isinstance(doc, dict):
        return False
    changed = False
    if "model" in doc:
        doc["model"] = name
        changed = True
    inner = doc.get("response")
    if isinstance(inner, dict) and "model" in inner:
        inner["model"] = name
        changed = True
    return changed


class SseRenamer:
    """Rewrites an SSE byte stream event by event; events may arrive split across chunks."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Complete events of `chunk` (plus what was pending), renamed; keeps the rest."""
        data = self._pending + chunk
        end = max(data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n"))
        if end < 0:
            self._pending = data
            return b""
        end += 4 if data[end : end + 4] == b"\r\n\r\n" else 2
        complete, self._pending = data[:end], data[end:]
        return b"".join(self._line(line) for line in complete.splitlines(keepends=True))

    def flush(self) -> bytes:
        """Whatever is left when the stream ends (an unterminated last event)."""
        rest, self._pending = self._pending, b""
        return b"".join(self._line(line) for line in rest.splitlines(keepends=True))

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return line
        body = line[5:].strip()
        if not body.startswith(b"{"):
            return line  # "[DONE]" and other non-JSON payloads
        ending = line[len(line.rstrip(b"\r\n")) :]
        return b"data: " + rename_json(body, self._name) + ending
