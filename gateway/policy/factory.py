"""Pick the policy engine named in settings."""

from __future__ import annotations

from gateway.policy.bundle import PolicyBundle
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.engine import PolicyEngine
from gateway.policy.opa import OpaEngine
from gateway.settings import Settings


def make_engine(settings: Settings, bundle: PolicyBundle) -> PolicyEngine:
    if settings.policy_engine == "opa":
        return OpaEngine(
            url=settings.opa_url, policy_version=bundle.version, timeout_s=settings.policy_timeout_s
        )
    return EmbeddedEngine(bundle)
