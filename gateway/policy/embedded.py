"""In-process Rego evaluation with rego-cpp (`regopy`), compiled once into a bundle.

Compiling the modules to a bundle at start and querying its entrypoint costs ~0.3 ms per
decision on this machine, against ~1.8 ms for re-planning the query each time.
"""

from __future__ import annotations

from typing import Any

import orjson
from regopy import Interpreter

from gateway.policy.bundle import PolicyBundle
from gateway.policy.decision import PACKAGE, RULE
from gateway.policy.engine import PolicyEngine

ENTRYPOINT = f"{PACKAGE.replace('.', '/')}/{RULE}"


class PolicyEvaluationError(Exception):
    pass


class EmbeddedEngine(PolicyEngine):
    name = "embedded"

    def __init__(self, bundle: PolicyBundle, *, memo_size: int = 4096) -> None:
        super().__init__(bundle.version)
        self.bundle = bundle
        # The bundle is immutable for this engine's life, so a deterministic policy gives the
        # same answer for the same input: memoize it (bounded), unless it reads the clock etc.
        self._memo: dict[str, Any] = {}
        self._memo_size = memo_size if bundle.deterministic else 0
        self._rego = Interpreter()
        for name, text in bundle.modules.items():
            self._rego.add_module(name, text)
        self._rego.add_data_json(orjson.dumps(bundle.data).decode())
        self._compiled = self._rego.build(None, [ENTRYPOINT])

    async def evaluate(self, doc: dict[str, Any]) -> Any:
        term = orjson.dumps(doc).decode()
        if term in self._memo:
            return self._memo[term]
        # Runs on the event loop: one interpreter, no awaits in between, so calls never overlap.
        self._rego.set_input_term(term)
        output = self._rego.query_bundle_entrypoint(self._compiled, ENTRYPOINT)
        if not output.ok():
            raise PolicyEvaluationError(str(output))
        result = (orjson.loads(str(output)).get("expressions") or [None])[0]
        if self._memo_size:
            if len(self._memo) >= self._memo_size:
                self._memo.pop(next(iter(self._memo)))  # oldest first
            self._memo[term] = result
        return result

    async def ready(self) -> bool:
        return True
