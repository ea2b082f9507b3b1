"""Callers only ever see the catalog's model name, never the upstream's.

A JSON body, and every event of an SSE stream (`gateway.forward.events`), is rewritten
where it names the model: top-level `model` (chat, completions, embeddings) and
`response.model` (Responses API events). When the two names are equal (the common case)
nothing is parsed at all.
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
