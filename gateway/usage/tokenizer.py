"""Counting tokens when the upstream reports none.

`bpe-openai` is a tiktoken-compatible BPE tokenizer whose wheels carry their vocabularies
(tiktoken downloads them on first use, which this deployment cannot). The vocabulary is
`o200k_base`; a served model's own tokenizer may differ, which is one more reason every
such figure is marked estimated. Loading takes ~0.7 s and ~100 MB, so it happens in a
worker thread the first time a count is needed, never at start and never on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

ENCODING = "o200k_base"


class Tokenizer:
    def __init__(self, encoding: str = ENCODING) -> None:
        self._name = encoding
        self._lock = threading.Lock()
        self._encoding: Any = None

    def _load(self) -> Any:
        with self._lock:
            if self._encoding is None:
                import bpe_openai  # deferred: native code most deployments never need

                self._encoding = bpe_openai.get_encoding(self._name)
        return self._encoding

    def count_sync(self, text: str) -> int:
        return len(self._load().encode_ordinary(text)) if text else 0

    async def count(self, *texts: str) -> tuple[int, ...]:
        """Token counts of `texts`, in a worker thread (long texts take milliseconds)."""
        return await asyncio.to_thread(lambda: tuple(self.count_sync(t) for t in texts))
