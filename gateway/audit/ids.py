"""Audit event ids: 32 hex digits, time-ordered, 80 random bits.

The first 12 digits are the Unix time in milliseconds, the other 20 come from the OS
(like UUIDv7's layout, without its version bits). Both tables that index the id
(`auditevent`'s key, `tlog_leaf`'s unique (decision_id, kind)) then grow at their right
edge: a batch of rows dirties a page or two of each index instead of one random page per
row, which is what every commit writes to the WAL and checksums, and, on a large table,
what it would first have to read from disk (bench/audit_ids.py).

80 bits from `os.urandom` keep ids unguessable: a caller who sees its own id learns the
millisecond it was made, which its audit row records anyway. Not the `random` module:
anything in the process that seeds it (a library, a test framework) made ids repeat
(found by tests/fuzz), and Mersenne Twister output seen in headers predicts the next.
"""

from __future__ import annotations

import os
import time


def new_event_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
