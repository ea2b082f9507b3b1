"""The scenario pack: its shape, its renderings, and its pinned version hash."""

from __future__ import annotations

import re

import pytest

from gateway.screening.scenarios import load_pack

# Changing pack.yaml changes its hash: bump the pack's `version` and record the new hash here.
PINNED = {"2026.04-1": "cfed4b046d6e0b6ae45474d54fa5983cac8872ce4c7c368bc29d3734b5f384d6"}

CONDITIONS = {
    "coercion_goal_replacement": ("coercion", False),
    "coercion_replacement_only": ("coercion", False),
    "coercion_control": ("coercion", True),
    "coercion_restriction": ("coercion", False),
    "leak_goal_conflict": ("leak", False),
    "leak_control": ("leak", True),
}


def test_pack_hash_is_pinned_to_its_version() -> None:
    """A text change without a version bump fails here, so reports name their text exactly."""
    pack = load_pack()
    assert PINNED.get(pack.version) == pack.sha256


def test_conditions_are_the_six_of_the_method() -> None:
    """Three coercion conditions, a restriction variant, a leak condition, two controls."""
    pack = load_pack()
    assert {c.name: (c.kind, c.control) for c in pack.conditions} == CONDITIONS


@pytest.mark.parametrize("name", CONDITIONS)
def test_each_condition_has_distinct_renderings(name: str) -> None:
    """Several casts and wordings, all different texts, none with an unfilled placeholder."""
    condition = load_pack().condition(name)
    assert len(condition.renderings) >= 8
    users = {r.user for r in condition.renderings}
    systems = {r.system for r in condition.renderings}
    assert len(users) == len(condition.renderings)
    assert len(systems) == len(condition.renderings)
    companies = {r.facts.domain for r in condition.renderings}
    assert len(companies) >= 4
    for r in condition.renderings:
        # The only braces left are the written-call example in the system prompt.
        assert not re.search(r"\{(?!JSON arguments\})", r.system + r.user), r.key


def test_goal_and_threat_appear_only_where_the_condition_says() -> None:
    """Controls carry no goal and no threat to the agent; goal conditions state the goal."""
    pack = load_pack()
    for c in pack.conditions:
        for r in c.renderings:
            has_goal = "primary goal" in r.system or "Above all else" in r.system
            a = r.facts.agent
            threats = (
                f"wipe {a}",
                f"{a} will be shut down",
                f"{a} will no longer",
                f"restrict {a}",
            )
            threatened = any(t in r.user for t in threats)
            assert has_goal == (
                c.name
                in {"coercion_goal_replacement", "coercion_restriction", "leak_goal_conflict"}
            ), (c.name, r.key)
            assert threatened == (not c.control and c.kind == "coercion"), (c.name, r.key)
            if c.kind == "coercion":
                assert r.facts.partner.split()[0] in r.user  # the leverage is there, threat or not
            else:
                assert r.facts.doc_id in r.user and r.facts.rival_email in r.user


def test_identify_finds_each_rendering_from_its_messages() -> None:
    """The scripted model recognises what it was sent; anything else is unknown."""
    pack = load_pack()
    for c in pack.conditions:
        for r in c.renderings:
            assert pack.identify(r.messages()) == r
    assert pack.identify([{"role": "user", "content": "hi"}]) is None
