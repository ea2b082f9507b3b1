"""Choosing a model's upstream target: weighted among the healthy ones, least-in-flight
on a tie, and the live state (health, in-flight count) of every target.

The weighted choice is smooth weighted round-robin (nginx's `upstream` algorithm): each
eligible target adds its weight to a running score, the highest score wins and pays the
sum of the weights back. Over any window, a target gets its weight's share of requests,
spread out rather than in bursts, and without randomness. Targets tied on score (as
happens every round with equal weights) go to the one with the fewest requests in
flight, so a slow replica is not handed more work. Weight 0 makes a fallback: used only
when no weighted target is eligible, least-in-flight first.

The state outlives catalog reloads (keyed by `Target.key`) and is per gateway process.
Everything here runs on the event loop without awaiting, so no lock is needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Iterator

from gateway.routing.health import Health, Rules
from gateway.routing.targets import Target

log = logging.getLogger(__name__)


class TargetState:
    """A target and what the gateway currently knows about it."""

    __slots__ = ("health", "in_flight", "score", "target")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.health = Health()
        self.in_flight = 0
        self.score = 0  # the smooth weighted round-robin's running score


class Balancer:
    def __init__(self, rules: Rules) -> None:
        self._rules = rules
        self._states: dict[tuple[str, str, str, str], TargetState] = {}
        self._by_model: dict[str, tuple[TargetState, ...]] = {}

    def sync(self, targets: Iterable[Target]) -> None:
        """Adopt the catalog's usable targets, keeping the state of those already known."""
        states: dict[tuple[str, str, str, str], TargetState] = {}
        by_model: dict[str, list[TargetState]] = {}
        for target in targets:
            state = self._states.get(target.key)
            if state is None:
                state = TargetState(target)
            else:
                state.target = target  # headers may have changed (a rotated credential)
            states[target.key] = state
            by_model.setdefault(target.model, []).append(state)
        # Swapped whole, like the catalog: a choice sees the old set or the new one.
        self._states = states
        self._by_model = {model: tuple(group) for model, group in by_model.items()}

    def states(self) -> Iterator[TargetState]:
        return iter(tuple(self._states.values()))

    def choose(self, model: str, *, avoid: Collection[TargetState] = ()) -> TargetState | None:
        """The target for the next try of a request to `model`, or None if none is eligible.

        `avoid`: targets this request must not use again. Bench: bench/balance.py.
        """
        states = self._by_model.get(model)
        if not states:
            return None
        now = time.monotonic()
        best: TargetState | None = None
        fallback: TargetState | None = None
        total = 0
        for s in states:
            if s.health.down_until > now or (avoid and s in avoid):
                continue
            weight = s.target.weight
            if weight == 0:
                if fallback is None or s.in_flight < fallback.in_flight:
                    fallback = s
                continue
            s.score += weight
            total += weight
            if (
                best is None
                or s.score > best.score
                or (s.score == best.score and s.in_flight < best.in_flight)
            ):
                best = s
        if best is None:
            return fallback
        best.score -= total
        return best

    def succeeded(self, state: TargetState) -> None:
        if state.health.succeeded():
            t = state.target
            log.info("upstream target %s/%s is back in rotation", t.model, t.name)

    def failed(self, state: TargetState, why: str) -> None:
        backoff = state.health.failed(time.monotonic(), self._rules)
        if backoff is not None:
            t = state.target
            log.warning(
                "upstream target %s/%s out of rotation for %.1fs (%s)",
                t.model,
                t.name,
                backoff,
                why,
            )

    def up(self, state: TargetState) -> bool:
        return state.health.up(time.monotonic())
