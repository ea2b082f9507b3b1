"""The policy stage as the pipeline sees it: the current engine, swapped whole on reload.

A reload (SIGHUP, or the admin endpoint) builds a complete new engine from the policy
directory and checks it decides before it replaces the old one; a broken policy is
refused and the old one keeps serving. Requests in flight finish on the engine they
started with. With OPA, the gateway does not load the policy itself: it reads back what
the OPA server has loaded, so the version in audit records is the one that decided.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateway.policy.bundle import PolicyBundle, load_bundle
from gateway.policy.decision import AdminDecision, Decision
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.engine import PolicyEngine
from gateway.policy.opa import OpaEngine
from gateway.reasons import Reason

log = logging.getLogger(__name__)


class PolicyReloadError(Exception):
    """The new policy was refused; the one in use keeps serving."""


class PolicyService:
    def __init__(self, engine: PolicyEngine, *, policy_dir: Path) -> None:
        self._engine = engine
        self._policy_dir = policy_dir

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def version(self) -> str:
        return self._engine.policy_version

    @property
    def bundle(self) -> PolicyBundle | None:
        """What decides now, if known (with OPA: once its policy was read back)."""
        return self._engine.bundle

    async def decide(self, doc: dict[str, Any]) -> Decision:
        return await self._engine.decide(doc)

    async def decide_admin(self, doc: dict[str, Any]) -> AdminDecision:
        return await self._engine.decide_admin(doc)

    async def ready(self) -> bool:
        return await self._engine.ready()

    async def start(self) -> None:
        await self._engine.start()
        if isinstance(self._engine, OpaEngine):
            try:
                await self._engine.refresh_version()
            except Exception as exc:
                # OPA not up yet: it decides nothing until it is (fail closed), and the
                # version is read again on the next reload.
                log.warning("cannot read the OPA server's policy version: %s", exc)

    async def close(self) -> None:
        await self._engine.close()

    async def reload(self) -> str:
        """Load and swap in the current policy; return its version, or raise and keep the old."""
        if isinstance(self._engine, OpaEngine):
            # The sidecar reloads its own files (`opa run --watch`); learn what it now has.
            try:
                await self._engine.refresh_version()
            except Exception as exc:
                raise PolicyReloadError(f"cannot read the OPA server's policy: {exc}") from exc
            return self._engine.policy_version
        try:
            candidate = EmbeddedEngine(load_bundle(self._policy_dir))
        except Exception as exc:
            raise PolicyReloadError(f"policy refused: {exc}") from exc
        # It must decide, not only compile: a probe input has to give a well-formed answer.
        probe = await candidate.decide(_PROBE)
        if Reason.POLICY_ERROR in probe.reasons:
            raise PolicyReloadError("policy refused: it gives no well-formed decision")
        old, self._engine = self._engine.policy_version, candidate
        log.warning("policy reloaded: %s → %s", old, candidate.policy_version)
        return candidate.policy_version


# Shaped like a real policy input (gateway/policy/input.py); any allow/deny will do.
_PROBE: dict[str, Any] = {
    "principal": {"sub": "probe", "client_id": "probe", "org_id": "probe", "tier_claim": "",
                  "scopes": [], "token_id": "probe", "auth_strength": "client_secret"},
    "trust": {"tier": "", "org_id": "probe", "org_status": "", "tier_expires_at": None},
    "model": {"name": "probe", "tier_floor": "",
              "screening": {"state": "missing", "max_ci_high": None}},
    "request": {"endpoint": "chat.completions", "stream": False, "max_tokens": None},
}  # fmt: skip
