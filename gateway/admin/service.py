"""What the admin API needs at hand, built once per app: its own database engine (admin
work never borrows the request path's connection), the tiers, the proof checker and the
policy engine that decides permissions, and the screening runs it started."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.screening_runs import ScreeningRuns
from gateway.db.engine import make_engine
from gateway.policy.service import PolicyService
from gateway.settings import Settings
from gateway.trust.proof import ProofChecker
from gateway.trust.tiers import Tiers


@dataclass(frozen=True)
class AdminService:
    engine: AsyncEngine
    tiers: Tiers
    checker: ProofChecker
    challenge_ttl: timedelta
    policy: PolicyService
    screenings: ScreeningRuns  # background tasks: cancelled by `close`

    @classmethod
    def from_settings(
        cls, settings: Settings, *, tiers: Tiers, policy: PolicyService
    ) -> AdminService:
        engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        return cls(
            engine=engine,
            tiers=tiers,
            checker=ProofChecker(settings.verification),
            challenge_ttl=timedelta(seconds=settings.verification.challenge_ttl_s),
            policy=policy,
            screenings=ScreeningRuns(engine, settings),
        )

    async def close(self) -> None:
        await self.screenings.close()  # before the engine they write their reports with
        await self.engine.dispose()
