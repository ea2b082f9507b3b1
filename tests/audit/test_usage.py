"""The outcome event's usage is the usage accounting's own figures (gateway/usage)."""

from __future__ import annotations

from gateway.audit.event import Usage
from gateway.audit.usage import audit_usage
from gateway.usage.figures import Usage as Metered


def test_the_source_says_who_counted() -> None:
    assert audit_usage(Metered.of(5, 7)) == Usage(5, 7, 12, source="upstream")
    assert audit_usage(Metered.of(4, 9, estimated=True)) == Usage(4, 9, 13, source="estimated")
    assert audit_usage(None) is None


def test_figures_outside_canonical_json_are_left_out() -> None:
    # Integers above 2^53 would make the event unwritable: no usage rather than no event.
    assert audit_usage(Metered(2**60, 1, 2**60 + 1)) is None
    assert audit_usage(Metered(-1, 1, 0)) is None
