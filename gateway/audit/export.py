"""Export a stretch of the audit log as a self-verifying JSONL file.

One JSON object per line:

    {"format": "tac-gateway/audit-log@v1", "origin": ..., "vkey": ..., "start": a,
     "frontier": [base64, ...]}                     the header
    {"index": i, "event": {...}}                    one per leaf, a <= i < end, in order
    {"checkpoint": "<signed note>"}                 right after the leaf it closes

`frontier` is the list of complete-subtree roots of the tree of size `a` (empty when
a = 0): with it, the leaves that follow are enough to recompute the root at every later
size, so an export of the recent part of a long log still verifies. It is not trusted:
a wrong frontier makes every later root differ from its signed checkpoint. The export
ends at the latest checkpoint (by default), so every exported leaf is covered by a
signature. `vkey` is informational: verify against a key obtained some other way.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
from sqlalchemy import Connection

from gateway.audit import ledger
from gateway.audit.tlog import frontier

FORMAT = "tac-gateway/audit-log@v1"


def export_log(
    conn: Connection,
    write: Callable[[bytes], object],
    *,
    origin: str,
    vkey: str,
    start: int = 0,
    end: int | None = None,
) -> int:
    """Write leaves [start, end) and the checkpoints among them; return the end used."""
    if end is None:
        latest = ledger.latest_checkpoint(conn)
        end = latest.size if latest else start
    if not 0 <= start <= end:
        raise ValueError(f"cannot export leaves [{start}, {end})")
    edge = frontier(start, ledger.hash_reader(conn))
    header = {
        "format": FORMAT,
        "origin": origin,
        "vkey": vkey,
        "start": start,
        "frontier": [base64.b64encode(h).decode() for h in edge],
    }
    write(orjson.dumps(header) + b"\n")
    notes = {cp.size: cp.note for cp in ledger.checkpoints(conn, min_size=start, max_size=end)}
    if start in notes:
        write(_checkpoint_line(notes[start]))
    for leaf in ledger.iter_leaves(conn, start=start, end=end):
        # The stored canonical bytes go out verbatim as the "event" value.
        write(b'{"index":%d,"event":%s}\n' % (leaf.index, leaf.event))
        if leaf.index + 1 in notes:
            write(_checkpoint_line(notes[leaf.index + 1]))
    return end


def _checkpoint_line(note: str) -> bytes:
    return orjson.dumps({"checkpoint": note}) + b"\n"
