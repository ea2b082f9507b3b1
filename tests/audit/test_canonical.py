"""The fast canonical form is byte for byte RFC 8785 (the `rfc8785` package) on events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785

from gateway.audit.canonical import (
    MAX_SAFE_INT,
    NotCanonicalizable,
    canonical_bytes,
    event_leaf,
    reference_canonical_bytes,
    timestamp,
)
from gateway.audit.tlog import leaf_hash
from tests.audit.conftest import make_event


def test_every_bmp_character_is_written_as_rfc8785_writes_it() -> None:
    # In values and in keys, one chunk of code points per event to keep the test quick.
    points = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), 512):
        chunk = "".join(chr(c) for c in points[start : start + 512])
        event = {"s": chunk, chunk: 1, "k" + chunk[::-1]: [chunk]}
        assert canonical_bytes(event) == rfc8785.dumps(event)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        MAX_SAFE_INT,
        -MAX_SAFE_INT,
        True,
        False,
        None,
        "",
        [],
        {},
        [1, [2, [3, {}]]],
        {"b": 1, "a": {"d": [None, True], "c": "x"}, "aa": 2, "A": 3, "_": 4, "1": 5},
        'control \x00\x01\x1f\x7f \u2028\u2029 quotes " \\ /',
    ],
)
def test_values_match_the_reference(value: Any) -> None:
    event = {"v": value}
    assert canonical_bytes(event) == rfc8785.dumps(event)


def test_keys_beyond_the_bmp_are_ordered_by_utf16_as_rfc8785_requires() -> None:
    # U+1F600 is D83D DE00 in UTF-16 (before U+E000) but F0.. in UTF-8 (after EE 80 80).
    event = {"\ue000": 1, "\U0001f600": 2, "agent": "bot \U0001f916"}
    assert canonical_bytes(event) == rfc8785.dumps(event)
    assert canonical_bytes(event).index("\U0001f600".encode()) < canonical_bytes(event).index(
        "\ue000".encode()
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"f": 1.0},
        {"f": 0.5},
        {"i": MAX_SAFE_INT + 1},
        {"i": -(2**60)},
        {1: "k"},
        {"s": {1, 2}},
        # the same, nested in objects and arrays (checked without a call per value)
        {"a": [{"f": 1.5}]},
        {"a": ({"k": [2**60]},)},
        {"a": {"b": {3: "x"}}},
        {"a": [[["ok", None, True, -(MAX_SAFE_INT + 1)]]]},
        {"a": {"b": b"bytes"}},
        {"a": [datetime(2026, 1, 2, tzinfo=UTC)]},
    ],
)
def test_what_would_differ_from_rfc8785_is_refused(bad: dict[Any, Any]) -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_bytes(bad)


def test_the_reference_refuses_beyond_2_53_too() -> None:
    with pytest.raises(NotCanonicalizable):
        reference_canonical_bytes({"i": 2**53})


def test_events_and_their_leaf_hash() -> None:
    for i in range(50):
        event = make_event(i, decision="deny" if i % 2 else "allow")
        data, h = event_leaf(event)
        assert data == rfc8785.dumps(event)
        assert h == leaf_hash(data)


def test_timestamps_are_utc_with_microseconds() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    ts = datetime(2026, 11, 26, 17, 30, 0, 55050, tzinfo=ist)
    assert timestamp(ts) == "2026-11-26T12:00:00.055050Z"
    assert timestamp(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00.000000Z"
    with pytest.raises(ValueError, match="naive"):
        timestamp(datetime(2026, 1, 2))


def test_timestamps_are_the_text_strftime_writes() -> None:
    # The fast formatting must not change a byte of any event: compare it with the
    # strftime form it replaced, over random instants, offsets and years below 1000.
    rng = random.Random(8785)
    # a zero offset that is not the UTC singleton takes the conversion path
    zones = [
        UTC,
        timezone(timedelta(0), "Z"),
        timezone(timedelta(hours=-7)),
        timezone(timedelta(minutes=345)),
    ]
    for _ in range(3000):
        ts = datetime(
            rng.choice([1, 5, 999, 1000, 1970, 2026, 9998]),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, 1, 55050, 999999, rng.randint(0, 999999)]),
            tzinfo=rng.choice(zones),
        )
        expected = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert timestamp(ts) == expected
