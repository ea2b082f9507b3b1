"""The text a call's tokens are made of: the prompt in a request, the output in an answer.

Only what an estimate needs: message contents, prompts and inputs going in; message
contents, completion texts, output texts and tool-call arguments coming out. Images,
audio and other non-text parts are not counted (an estimate undercounts them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def prompt_text(body: dict[str, Any]) -> str:
    """The prompt of a chat, completions, responses or embeddings request body."""
    parts: list[str] = []
    for field in ("messages", "prompt", "input", "instructions"):
        if field in body:
            parts.extend(_strings(body[field]))
    return "\n".join(parts)


def prompt_chars(body: dict[str, Any]) -> int:
    """Characters of the prompt, without building the joined string."""
    total = 0
    for field in ("messages", "prompt", "input", "instructions"):
        if field in body:
            total += sum(len(s) for s in _strings(body[field]))
    return total


def output_text(doc: Any) -> Iterator[str]:
    """The output text of a whole response or of one stream event, in any endpoint's shape."""
    if not isinstance(doc, dict):
        return
    for choice in doc.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        for key in ("message", "delta"):  # chat: whole message, or a stream delta
            part = choice.get(key)
            if isinstance(part, dict):
                yield from _strings(part.get("content"))
                yield from _strings(part.get("reasoning_content"))
                for call in part.get("tool_calls") or ():
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        yield from _strings(call["function"].get("arguments"))
        if isinstance(choice.get("text"), str):  # legacy completions
            yield choice["text"]
    kind = doc.get("type")
    if kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
        yield doc["delta"]
    elif doc.get("object") == "response":  # a whole Responses API answer
        for item in doc.get("output") or ():
            if isinstance(item, dict):
                yield from _strings(item.get("content"))


def _strings(value: Any) -> Iterator[str]:
    """Every text in a content value: a string, a list of parts, or messages."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key in ("text", "content", "input_text", "output_text"):
            if key in value:
                yield from _strings(value[key])


def prompt_estimate(body: dict[str, Any]) -> int:
    """A quick upper-ish guess of the prompt's tokens (4 characters a token), for
    reserving tokens before the call; never the figure that is finally debited."""
    return -(-prompt_chars(body) // 4)
