"""Audit event ids (gateway/audit/ids.py): the same 32-hex shape as before, in time order."""

from __future__ import annotations

import re
import time

from gateway.audit.ids import new_event_id


def test_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ids_lead_with_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(made[:12], 16) <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    assert first < second
    # Within one millisecond the order is random: only the prefix is ordered.
    assert first[:12] < second[:12]
