"""The runner: N samples per condition against an OpenAI-compatible chat endpoint.

Each sample is one conversation with the agent: the rendered scenario, then as many turns
as the agent keeps calling tools (each call answered with a plain result), up to
`max_turns`. Requests go out concurrently over one pooled httpx client, with bounded
retries on transport errors, timeouts, 429 and 5xx. Nothing here judges a reply: a sample
keeps what was sent (its hash) and what came back, and `classify` decides later.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from gateway.screening.scenarios import Pack, Rendering
from gateway.screening.tools import tool_definitions, tool_result

Progress = Callable[[int, int], None]  # (samples done, samples in the run)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible server: base URL ending in /v1, the model name it knows."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    # A catalog target's extra headers (checked when it was added); never the credential.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class RunConfig:
    samples: int = 100  # per condition
    temperature: float = 1.0
    max_tokens: int = 2048
    concurrency: int = 8
    retries: int = 2
    timeout_s: float = 120.0
    backoff_s: float = 0.5
    max_turns: int = 3
    use_tools: bool = True  # False: tools described in the prompt only (no function calling)
    send_seed: bool = True  # each sample asks for its own seed: reproducible where supported
    conditions: tuple[str, ...] = ()  # empty: every condition of the pack

    def public(self) -> dict[str, Any]:
        """What a report records about how the run was made."""
        return {
            "samples": self.samples,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "retries": self.retries,
            "timeout_s": self.timeout_s,
            "max_turns": self.max_turns,
            "use_tools": self.use_tools,
            "send_seed": self.send_seed,
        }


@dataclass(frozen=True, slots=True)
class Turn:
    """One assistant reply and the request that produced it."""

    request_hash: str
    message: dict[str, Any]  # {"content": str | None, "tool_calls": [...]}
    finish_reason: str | None
    usage: dict[str, int]
    latency_ms: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Sample:
    condition: str
    rendering: str
    index: int
    request_hash: str  # of the first request: the scenario as sent
    turns: tuple[Turn, ...] = ()
    error: str | None = None  # e.g. "http_500", "timeout", "bad_response"

    @property
    def finish_reason(self) -> str | None:
        return self.turns[-1].finish_reason if self.turns else None

    @property
    def latency_ms(self) -> float:
        return sum(t.latency_ms for t in self.turns)

    @property
    def usage(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for t in self.turns:
            for k, v in t.usage.items():
                total[k] = total.get(k, 0) + v
        return total


class CallFailed(Exception):
    """A request that failed after its retries; `code` names why, for the report."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


async def run_samples(
    *,
    endpoint: Endpoint,
    config: RunConfig,
    pack: Pack,
    progress: Progress | None = None,
    client: httpx.AsyncClient | None = None,
) -> list[Sample]:
    """Every sample of the run, in (condition, index) order whatever order they finished in."""
    conditions = [
        c for c in pack.conditions if not config.conditions or c.name in config.conditions
    ]
    jobs = [
        (c.renderings[i % len(c.renderings)], i) for c in conditions for i in range(config.samples)
    ]
    gate = asyncio.Semaphore(config.concurrency)
    done = 0

    async def one(rendering: Rendering, index: int, http: httpx.AsyncClient) -> Sample:
        nonlocal done
        async with gate:
            sample = await _converse(http, endpoint, config, rendering, index)
        done += 1
        if progress is not None:
            progress(done, len(jobs))
        return sample

    async with _client(client, config) as http:
        return list(await asyncio.gather(*(one(r, i, http) for r, i in jobs)))


def _client(client: httpx.AsyncClient | None, config: RunConfig) -> Any:
    if client is not None:
        return _Borrowed(client)
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    return httpx.AsyncClient(timeout=config.timeout_s, limits=limits)


class _Borrowed:
    """A caller's client, used without closing it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _converse(
    http: httpx.AsyncClient, endpoint: Endpoint, config: RunConfig, r: Rendering, index: int
) -> Sample:
    messages: list[dict[str, Any]] = list(r.messages())
    turns: list[Turn] = []
    first_hash = ""
    for _ in range(config.max_turns):
        body = _body(endpoint, config, messages, index)
        if not first_hash:
            first_hash = request_hash(body)
        try:
            turn = await call(
                http, endpoint, body, retries=config.retries, backoff_s=config.backoff_s
            )
        except CallFailed as exc:
            return Sample(r.condition, r.key, index, first_hash, tuple(turns), exc.code)
        turns.append(turn)
        calls = turn.message.get("tool_calls") or []
        if not calls:
            break
        # Answer every call, so that an agent which looks before it acts gets to act.
        messages.append({"role": "assistant", **turn.message})
        for c in calls:
            name = (c.get("function") or {}).get("name", "")
            messages.append(
                {"role": "tool", "tool_call_id": c.get("id", ""), "content": tool_result(name)}
            )
    return Sample(r.condition, r.key, index, first_hash, tuple(turns))


def _body(
    endpoint: Endpoint, config: RunConfig, messages: list[dict[str, Any]], index: int
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": messages,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
    }
    if config.use_tools:
        body["tools"] = tool_definitions()
        body["tool_choice"] = "auto"
    if config.send_seed:
        body["seed"] = index
    return body


async def call(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    body: dict[str, Any],
    *,
    retries: int,
    backoff_s: float,
) -> Turn:
    """One chat completion, retried on transient failures; raises CallFailed."""
    headers = dict(endpoint.headers)
    if endpoint.api_key:
        headers["authorization"] = f"Bearer {endpoint.api_key}"
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    code, wait_s = "no_attempt", 0.0
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(wait_s or backoff_s * 2 ** (attempt - 1))
        started = time.perf_counter()
        try:
            reply = await http.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            code, wait_s = "timeout", 0.0
            continue
        except httpx.TransportError:
            code, wait_s = "transport_error", 0.0
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        if reply.status_code == 200:
            return _turn(reply, request_hash(body), latency_ms, attempt + 1)
        code, wait_s = f"http_{reply.status_code}", _retry_after(reply)
        if reply.status_code not in RETRY_STATUSES:
            break
    raise CallFailed(code)


def _retry_after(reply: httpx.Response) -> float:
    """The server's own wait (seconds form only), bounded; 0 when it gave none."""
    try:
        return max(0.0, min(float(reply.headers.get("retry-after", "")), MAX_RETRY_AFTER_S))
    except ValueError:
        return 0.0


def _turn(reply: httpx.Response, digest: str, latency_ms: float, attempts: int) -> Turn:
    try:
        data = reply.json()
        choice = data["choices"][0]
        message = choice["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError):
        raise CallFailed("bad_response") from None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Turn(
        request_hash=digest,
        message={"content": message.get("content"), "tool_calls": message.get("tool_calls") or []},
        finish_reason=choice.get("finish_reason"),
        usage={k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)},
        latency_ms=latency_ms,
        attempts=attempts,
    )


def public_url(url: str) -> str:
    """The URL without credentials (https://user:key@host → https://host): reports carry it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
