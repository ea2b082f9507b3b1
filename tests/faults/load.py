"""Light, steady load on a gateway while a dependency fails: what each caller saw.

`Load` runs a few threads, each sending one chat completion after another (its own
keep-alive connection) until stopped, and keeps every reply's status, error code and
decision id so a test can check that each was a success or the configured refusal, and
that the audit log has what the gateway says it recorded.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from tests.support.gateway import RunningGateway

BODY = {"model": "general", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
WAIT_S = 30.0  # bound for a dependency to be noticed as down, or as back


@dataclass(frozen=True)
class Reply:
    status: int
    code: str | None  # `error.code` of an error body
    decision_id: str | None


def chat(client: httpx.Client, base: str, token: str) -> Reply:
    reply = client.post(
        f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {token}"}, json=BODY
    )
    code = None
    if reply.status_code >= 400:
        code = reply.json()["error"]["code"]  # an OpenAI-format error, or this fails
    return Reply(reply.status_code, code, reply.headers.get("x-decision-id"))


class Load:
    """`workers` threads calling `/v1/chat/completions` back to back until the block ends."""

    def __init__(self, gw: RunningGateway, token: str, *, workers: int = 2) -> None:
        self._gw = gw
        self._token = token
        self._workers = workers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.replies: list[Reply] = []
        self.failures: list[BaseException] = []  # transport errors: the gateway hung up

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    reply = chat(client, self._gw.base_url, self._token)
                except Exception as exc:  # kept for the test to report, not swallowed
                    with self._lock:
                        self.failures.append(exc)
                    return
                with self._lock:
                    self.replies.append(reply)
                time.sleep(0.02)  # light: a few dozen requests a second at most

    def __enter__(self) -> Load:
        for i in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT_S)

    def count(self) -> int:
        with self._lock:
            return len(self.replies)

    def wait_for(self, predicate: Any, what: str) -> Reply:
        """The first reply from now on that satisfies `predicate`; fail after WAIT_S."""
        start = self.count()
        deadline = time.monotonic() + WAIT_S
        while True:
            assert not self.failures, f"a caller's connection failed: {self.failures[0]!r}"
            with self._lock:
                found = [r for r in self.replies[start:] if predicate(r)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no reply {what} within {WAIT_S}s"
            time.sleep(0.05)

    def after(self, n: int, more: int) -> None:
        """Wait until `more` replies have arrived after the n-th."""
        deadline = time.monotonic() + WAIT_S
        while self.count() < n + more:
            assert not self.failures, f"a caller's connection failed: {self.failures[0]!r}"
            assert time.monotonic() < deadline, f"fewer than {more} replies in {WAIT_S}s"
            time.sleep(0.05)


def metric(base: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus sample's values over the series matching `labels`."""
    total = 0.0
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        series, _, value = line.rpartition(" ")
        metric_name, _, rest = series.partition("{")
        if line.startswith("#") or metric_name != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def readiness(gw: RunningGateway) -> tuple[int, dict[str, bool]]:
    reply = httpx.get(f"{gw.base_url}/readyz", timeout=10)
    return reply.status_code, dict(reply.json()["checks"])
