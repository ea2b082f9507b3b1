"""The one interface both policy engines implement, and the fail-closed wrapper around them."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from gateway.policy.bundle import PolicyBundle
from gateway.policy.decision import (
    ADMIN_PACKAGE,
    PACKAGE,
    AdminDecision,
    Decision,
    parse_admin_result,
    parse_result,
)
from gateway.reasons import Reason

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """The engine could not be reached (OPA down); distinct from a policy that errored."""


class PolicyEngine(ABC):
    name: str

    def __init__(self, policy_version: str) -> None:
        self.policy_version = policy_version
        # The modules and data that decide, when known: archived for decision replay.
        self.bundle: PolicyBundle | None = None

    @abstractmethod
    async def evaluate(self, doc: dict[str, Any], package: str = PACKAGE) -> Any:
        """Return the raw value of `data.<package>.decision` for this input."""

    @abstractmethod
    async def ready(self) -> bool: ...

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def decide(self, doc: dict[str, Any]) -> Decision:
        try:
            result = await self.evaluate(doc)
        except EngineUnavailable:
            log.error("policy engine %s unreachable; denying", self.name)
            return Decision.deny(Reason.POLICY_UNAVAILABLE, self.policy_version)
        except Exception:
            log.exception("policy engine %s failed; denying", self.name)
            return Decision.deny(Reason.POLICY_ERROR, self.policy_version)
        return parse_result(result, self.policy_version)

    async def decide_admin(self, doc: dict[str, Any]) -> AdminDecision:
        """The admin policy's decision on `{principal, memberships, action, target}`."""
        try:
            result = await self.evaluate(doc, ADMIN_PACKAGE)
        except EngineUnavailable:
            log.error("policy engine %s unreachable; denying admin action", self.name)
            return AdminDecision(False, (Reason.POLICY_UNAVAILABLE,), self.policy_version)
        except Exception:
            log.exception("policy engine %s failed; denying admin action", self.name)
            return AdminDecision(False, (Reason.POLICY_ERROR,), self.policy_version)
        return parse_admin_result(result, self.policy_version)
