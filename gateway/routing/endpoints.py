"""The OpenAI-compatible endpoints the gateway proxies, and what each one means for a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # audit and metric label
    path: str  # below the upstream's base URL (…/v1)
    streams: bool  # accepts `"stream": true` and answers with SSE
    # Fields that bound the output length; each is checked and capped by policy.
    cap_fields: tuple[str, ...]
    # Set to the cap when the caller gave no bound (None: the endpoint's own default is
    # already small, as for legacy completions' 16 tokens, or there is no output length).
    inject_cap: str | None
    # Streams report usage only when asked (`stream_options.include_usage`); the Responses
    # API always reports it in its last event.
    stream_usage_option: bool = False


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "chat.completions",
            "/chat/completions",
            streams=True,
            cap_fields=("max_tokens", "max_completion_tokens"),
            inject_cap="max_tokens",
            stream_usage_option=True,
        ),
        Endpoint(
            "completions",
            "/completions",
            streams=True,
            cap_fields=("max_tokens",),
            inject_cap=None,
            stream_usage_option=True,
        ),
        Endpoint(
            "responses",
            "/responses",
            streams=True,
            cap_fields=("max_output_tokens",),
            inject_cap="max_output_tokens",
        ),
        Endpoint("embeddings", "/embeddings", streams=False, cap_fields=(), inject_cap=None),
    )
}
