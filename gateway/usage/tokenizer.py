"""Counting tokens when the upstream reports none.

`bpe-openai` is a tiktoken-compatible BPE tokenizer whose wheels carry their vocabularies
(tiktoken downloads them on first use, which this deployment cannot). The vocabulary is
`o200k_base`; a served model's own tokenizer may differ, which is one more reason every
such figure is marked estimated. Loading takes ~0.7 s and ~100 MB, so it happens in a
worker thread the first time a count is needed, never at start and never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

ENCODING = "o200k_base"
_CHARS_PER_TOKEN = 4  # the fallback's rule of thumb, should the tokenizer fail to load


class Tokenizer:
    def __init__(self, encoding: str = ENCODING) -> None:
        self._name = encoding
        self._lock = threading.Lock()
        self._encoding: Any = None

    def _load(self) -> Any:
        with self._lock:
            if self._encoding is None:
                try:
                    import bpe_openai  # deferred: native code most deployments never need

                    self._encoding = bpe_openai.get_encoding(self._name)
                except Exception as exc:  # e.g. no wheel for this platform
                    log.error("tokenizer unavailable (%s); estimating 4 characters a token", exc)
                    self._encoding = False
        return self._encoding

    def count_sync(self, text: str) -> int:
        if not text:
            return 0
        encoding = self._load()
        if encoding is False:
            return -(-len(text) // _CHARS_PER_TOKEN)
        return len(encoding.encode_ordinary(text))

    async def count(self, *texts: str) -> tuple[int, ...]:
        """Token counts of `texts`, in a worker thread (long texts take milliseconds)."""
        return await asyncio.to_thread(lambda: tuple(self.count_sync(t) for t in texts))
