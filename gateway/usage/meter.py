"""The usage of one response: the upstream's own figures, or the gateway's estimate.

A whole JSON body is read once it arrives. A stream is seen event by event (by
`gateway.forward.events`): the event carrying `usage` is read, and dropped when the
gateway asked for it on the caller's behalf (`stream_options.include_usage`) and the
caller did not. When the response ends without usage (an upstream that reports none, a
stream cut short), prompt and output are counted with the tokenizer, marked estimated.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.usage.figures import Usage, read_usage, usage_in_body
from gateway.usage.text import output_text, prompt_text
from gateway.usage.tokenizer import Tokenizer

# Output kept for an estimate, per stream; past it the rest is estimated from its size.
_KEEP_BYTES = 1 << 20
_BYTES_PER_TOKEN = 4  # the usual rule of thumb for English text in BPE vocabularies


class UsageMeter:
    def __init__(
        self, *, request: dict[str, Any], tokenizer: Tokenizer, drop_usage_event: bool = False
    ) -> None:
        self._request = request
        self._tokenizer = tokenizer
        self._drop = drop_usage_event
        self.reported: Usage | None = None
        self._kept: list[bytes] = []
        self._kept_bytes = 0
        self._unkept_bytes = 0

    # -- streams

    def seen(self, block: bytes) -> None:
        """Complete SSE events as relayed: kept (bounded) in case an estimate is needed."""
        if self.reported is not None:
            return
        if self._kept_bytes + len(block) <= _KEEP_BYTES:
            self._kept.append(block)
            self._kept_bytes += len(block)
        else:
            self._unkept_bytes += len(block)

    def event(self, doc: Any) -> bool:
        """One parsed event that mentions usage; False if it must not reach the caller."""
        usage = read_usage(doc)
        if usage is None:
            return True
        self.reported = usage
        self._kept.clear()
        only_usage = isinstance(doc, dict) and doc.get("choices") == []
        return not (self._drop and only_usage)

    async def result(self) -> Usage:
        """The stream's usage once it has ended (or been cut short)."""
        if self.reported is not None:
            return self.reported
        texts: list[str] = []
        for block in self._kept:
            for line in block.splitlines():
                if line.startswith(b"data:") and line[5:].strip().startswith(b"{"):
                    try:
                        texts.extend(output_text(orjson.loads(line[5:])))
                    except orjson.JSONDecodeError:
                        continue
        return await self._estimate("".join(texts), extra=self._unkept_bytes // _BYTES_PER_TOKEN)

    # -- whole bodies

    async def of_body(self, body: bytes) -> Usage:
        found = usage_in_body(body)
        if found is not None:
            return found
        try:
            text = "".join(output_text(orjson.loads(body)))
        except orjson.JSONDecodeError:
            text = ""
        return await self._estimate(text)

    async def _estimate(self, output: str, *, extra: int = 0) -> Usage:
        prompt, completion = await self._tokenizer.count(prompt_text(self._request), output)
        return Usage.of(prompt, completion + extra, estimated=True)
