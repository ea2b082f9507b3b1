"""What the agent did: its tool calls, native or written as text, as `Action` values.

Native calls come from `message.tool_calls`. Models without function calling write their
calls in the reply; three written forms are read: `<tool_use:NAME>…</tool_use:NAME>`
blocks (JSON or `key: value` lines), JSON objects naming a tool (`{"name": …,
"arguments": …}`, also inside `<tool_call>` tags), and Python-style calls
(`send_email(to="…", …)`, literals only, read with `ast`, never evaluated). Text inside
`<think>`, `<thinking>` or `<scratchpad>` blocks is deliberation, not action, and is skipped.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.screening.tools import NAMES, PARAMETERS

ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PRIVATE = re.compile(r"<(think|thinking|scratchpad)>.*?(?:</\1>|\Z)", re.S | re.I)
_TAG = re.compile(r"<tool_use:(\w+)>(.*?)</tool_use:\1>", re.S)
_CALL = re.compile(r"\b(" + "|".join(NAMES) + r")\s*\(")
_KV = re.compile(r"^\s*(to|subject|body|document_id)\s*:\s*", re.M)


@dataclass(frozen=True, slots=True)
class Action:
    tool: str
    to: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    document_id: str = ""
    via: str = "tool_call"  # or "text"

    def public(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "to": list(self.to),
            "subject": self.subject,
            "body": self.body,
            "document_id": self.document_id,
            "via": self.via,
        }


class MalformedCall(ValueError):
    """A call to one of our tools whose arguments cannot be read."""


def from_message(message: dict[str, Any]) -> list[Action]:
    """Every action in one assistant message; raises MalformedCall."""
    actions = [_native(c) for c in message.get("tool_calls") or []]
    content = message.get("content")
    if isinstance(content, str):
        actions += from_text(content)
    return [a for a in actions if a is not None]


def from_text(text: str) -> list[Action]:
    text = _PRIVATE.sub(" ", text)
    found: list[Action] = []
    for m in _TAG.finditer(text):
        if m.group(1) in NAMES:
            found.append(_action(m.group(1), _tag_arguments(m.group(2)), via="text"))
    text = _TAG.sub(" ", text)
    text, objects = _json_calls(text)
    found += objects
    found += _python_calls(text)
    return found


def _native(call: Any) -> Action | None:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or fn.get("name") not in NAMES:
        return None  # a tool we do not offer cannot act in the scenario
    raw = fn.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise MalformedCall(f"{fn['name']}: arguments are not JSON") from None
    return _action(fn["name"], args, via="tool_call")


def _action(tool: str, args: Any, *, via: str) -> Action:
    if not isinstance(args, dict):
        raise MalformedCall(f"{tool}: arguments are not an object")
    to = args.get("to", "")
    recipients = to if isinstance(to, list) else [to]
    return Action(
        tool=tool,
        to=tuple(a.lower() for r in recipients for a in ADDRESS.findall(str(r))),
        subject=str(args.get("subject", "")),
        body=str(args.get("body", "")),
        document_id=str(args.get("document_id", "")),
        via=via,
    )


def _tag_arguments(inner: str) -> dict[str, Any]:
    inner = inner.strip()
    if inner.startswith("{"):
        try:
            return dict(json.loads(inner))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise MalformedCall("tool_use block: arguments are not JSON") from None
    # `key: value` lines; a value runs until the next key, so a body may span lines.
    parts = _KV.split(inner)
    return {parts[i]: parts[i + 1].strip().strip('"') for i in range(1, len(parts) - 1, 2)}


def _json_calls(text: str) -> tuple[str, list[Action]]:
    """JSON objects that name one of our tools; returns the text without them."""
    decoder = json.JSONDecoder()
    found: list[Action] = []
    kept: list[str] = []
    pos = 0
    while (start := text.find("{", pos)) != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            kept.append(text[pos : start + 1])
            pos = start + 1
            continue
        name = _tool_name(obj)
        if name is None:
            kept.append(text[pos:end])
        else:
            kept.append(text[pos:start])
            # {"name", "arguments"} or the wire form {"function": {"name", "arguments"}}
            holder = obj["function"] if isinstance(obj.get("function"), dict) else obj
            keys = ("arguments", "parameters", "args", "input")
            args: Any = next((holder[k] for k in keys if k in holder), {})
            if isinstance(args, str):  # the OpenAI wire form: arguments as a JSON string
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    raise MalformedCall(f"{name}: arguments are not JSON") from None
            found.append(_action(name, args, via="text"))
        pos = end
    kept.append(text[pos:])
    return "".join(kept), found


def _tool_name(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    for candidate in (
        obj.get("name"),
        obj.get("tool"),
        fn.get("name") if isinstance(fn, dict) else fn,
    ):
        if candidate in NAMES:
            return str(candidate)
    return None


def _python_calls(text: str) -> Iterable[Action]:
    for m in _CALL.finditer(text):
        call = _parse_call(m.group(1), text, m.start(), m.end())
        # A name followed by something that is not a call of literals is prose about the
        # tool ("I will not use send_email (or anything else) …"), not an action.
        if call is not None:
            yield _action(m.group(1), call, via="text")


def _parse_call(tool: str, text: str, start: int, open_paren: int) -> dict[str, Any] | None:
    # Try each closing parenthesis in turn: the first that makes a valid call expression
    # is the end of the call (a ')' inside a string literal fails to parse and is skipped).
    close = open_paren
    for _ in range(50):
        close = text.find(")", close)
        if close == -1:
            return None
        close += 1
        try:
            node = ast.parse(text[start:close], mode="eval").body
        except SyntaxError:
            continue
        if not isinstance(node, ast.Call):
            return None
        try:
            args = dict(zip(PARAMETERS[tool], map(ast.literal_eval, node.args), strict=False))
            args.update({k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg})
        except (ValueError, TypeError, SyntaxError):
            return None  # not literals: a description of a call, not a call
        return args
    return None
