"""In-process Rego evaluation with rego-cpp (`regopy`), compiled once into a bundle.

Compiling the modules to a bundle at start and querying its entrypoint costs ~0.3 ms per
decision on this machine, against ~1.8 ms for re-planning the query each time.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from regopy import Interpreter

from gateway.policy.bundle import PolicyBundle
from gateway.policy.decision import ADMIN_PACKAGE, PACKAGE, RULE
from gateway.policy.engine import PolicyEngine


def entrypoint(package: str) -> str:
    return f"{package.replace('.', '/')}/{RULE}"


ENTRYPOINT = entrypoint(PACKAGE)
ADMIN_ENTRYPOINT = entrypoint(ADMIN_PACKAGE)


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
        # One compiled bundle per entrypoint, each with only the modules of its package
        # tree: the admin policy in the request path's bundle costs ~0.03 ms per decision.
        admin = {n: t for n, t in bundle.modules.items() if _package(t) == ADMIN_PACKAGE}
        authz = {n: t for n, t in bundle.modules.items() if n not in admin}
        self._compiled: dict[str, tuple[Interpreter, Any, str]] = {
            PACKAGE: _compile(authz, bundle.data, ENTRYPOINT)
        }
        # A policy directory without the admin policy still serves requests; admin actions
        # are then denied (policy_error).
        if admin:
            self._compiled[ADMIN_PACKAGE] = _compile(admin, bundle.data, ADMIN_ENTRYPOINT)

    async def evaluate(self, doc: dict[str, Any], package: str = PACKAGE) -> Any:
        term = orjson.dumps(doc).decode()
        # Admin decisions are rare and not memoized; the memo stays the request path's.
        memoize = package == PACKAGE
        if memoize and term in self._memo:
            return self._memo[term]
        compiled = self._compiled.get(package)
        if compiled is None:
            raise PolicyEvaluationError(f"no policy for {package} in the bundle")
        rego, built, point = compiled
        # Runs on the event loop: no awaits in between, so calls never overlap.
        rego.set_input_term(term)
        output = rego.query_bundle_entrypoint(built, point)
        if not output.ok():
            raise PolicyEvaluationError(str(output))
        result = (orjson.loads(str(output)).get("expressions") or [None])[0]
        if memoize and self._memo_size:
            if len(self._memo) >= self._memo_size:
                self._memo.pop(next(iter(self._memo)))  # oldest first
            self._memo[term] = result
        return result

    async def ready(self) -> bool:
        return True


_PACKAGE_LINE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)


def _package(text: str) -> str | None:
    found = _PACKAGE_LINE.search(text)
    return found.group(1) if found else None


def _compile(
    modules: dict[str, str], data: dict[str, Any], point: str
) -> tuple[Interpreter, Any, str]:
    rego = Interpreter()
    for name, text in modules.items():
        rego.add_module(name, text)
    rego.add_data_json(orjson.dumps(data).decode())
    return rego, rego.build(None, [point]), point
