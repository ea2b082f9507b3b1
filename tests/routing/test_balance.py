"""Choosing a target: weights, least-in-flight on ties, fallbacks, health, exclusions."""

from __future__ import annotations

from collections import Counter

from gateway.routing.balance import Balancer, TargetState
from gateway.routing.health import Rules
from gateway.routing.targets import Target

RULES = Rules(failures_to_down=2, backoff_s=60.0, backoff_max_s=600.0)


def target(name: str, weight: int = 1, model: str = "m") -> Target:
    return Target(
        model=model,
        name=name,
        url=f"http://{name}:8000/v1",
        upstream_model=model,
        weight=weight,
        headers={},
    )


def balancer(*targets: Target) -> Balancer:
    b = Balancer(RULES)
    b.sync(targets)
    return b


def picks(b: Balancer, n: int, model: str = "m") -> Counter[str]:
    chosen = Counter[str]()
    for _ in range(n):
        state = b.choose(model)
        assert state is not None
        chosen[state.target.name] += 1
    return chosen


def test_weights_give_exact_shares_over_a_cycle() -> None:
    """Smooth weighted round-robin: over 6 choices of weights 3:2:1, exactly 3, 2 and 1."""
    b = balancer(target("a", 3), target("b", 2), target("c", 1))
    assert picks(b, 6) == {"a": 3, "b": 2, "c": 1}
    assert picks(b, 600) == {"a": 300, "b": 200, "c": 100}


def test_weighted_choices_are_interleaved() -> None:
    """A weight-5 target does not take five in a row while its peer waits."""
    b = balancer(target("a", 5), target("b", 1))
    order = [b.choose("m").target.name for _ in range(6)]  # type: ignore[union-attr]
    assert order.count("b") == 1 and order[0] == "a" and order[-1] == "a"
    assert "aaaaa" not in "".join(order)


def test_tie_goes_to_fewest_in_flight() -> None:
    """Equal weights tie every other round; the tie goes to the target with less work."""
    a, b_ = target("a"), target("b")
    b = balancer(a, b_)
    states = {s.target.name: s for s in b.states()}
    states["a"].in_flight = 3
    first = b.choose("m")
    assert first is not None and first.target.name == "b"


def test_weight_zero_is_a_fallback() -> None:
    """A weight-0 target gets nothing while a weighted one is eligible, everything after."""
    b = balancer(target("primary", 1), target("backup", 0))
    assert picks(b, 10) == {"primary": 10}
    primary = next(s for s in b.states() if s.target.name == "primary")
    for _ in range(RULES.failures_to_down):
        b.failed(primary, "test")
    assert picks(b, 5) == {"backup": 5}


def test_down_and_avoided_targets_are_skipped() -> None:
    b = balancer(target("a"), target("b"), target("c"))
    states = {s.target.name: s for s in b.states()}
    for _ in range(RULES.failures_to_down):
        b.failed(states["a"], "test")
    assert not b.up(states["a"])
    assert set(picks(b, 10)) == {"b", "c"}
    only = b.choose("m", avoid=[states["b"]])
    assert only is states["c"]
    assert b.choose("m", avoid=[states["b"], states["c"]]) is None


def test_unknown_model_and_no_targets() -> None:
    b = balancer(target("a", model="x"))
    assert b.choose("y") is None


def test_state_survives_a_reload_and_forgets_removed_targets() -> None:
    """Health and in-flight counts are kept by target across catalog reloads."""
    a, b_ = target("a"), target("b")
    b = balancer(a, b_)
    state_a = next(s for s in b.states() if s.target.name == "a")
    for _ in range(RULES.failures_to_down):
        b.failed(state_a, "test")
    b.sync([target("a"), target("b")])  # equal values, new objects: a reload
    again = next(s for s in b.states() if s.target.name == "a")
    assert again is state_a and not b.up(again)
    b.sync([target("b")])
    assert [s.target.name for s in b.states()] == ["b"]
    # A target whose URL changed is a new target, with a clean record.
    moved = Target(
        model="m",
        name="b",
        url="http://elsewhere:8000/v1",
        upstream_model="m",
        weight=1,
        headers={},
    )
    old_b = next(iter(b.states()))
    b.sync([moved])
    assert next(iter(b.states())) is not old_b


def test_single_failures_do_not_eject_below_the_threshold() -> None:
    b = balancer(target("a"))
    state: TargetState = next(iter(b.states()))
    b.failed(state, "test")
    b.succeeded(state)
    b.failed(state, "test")
    assert b.up(state)
