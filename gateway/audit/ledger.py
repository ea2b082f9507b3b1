"""The audit log's storage: append leaves in order, sign checkpoints, serve proofs.

Synchronous functions over a SQLAlchemy `Connection`, called inside the caller's
transaction: on SQLite from the audit writer thread, on PostgreSQL through
`AsyncConnection.run_sync`. A batch of leaves is appended in the same transaction as the
audit rows it describes, so a leaf exists exactly when its row does.

Order. Every append starts by locking the single `tlog_head` row (SELECT ... FOR UPDATE on
PostgreSQL; SQLite has one writer at a time anyway) and reading the committed size, the
index after the last leaf. Indexes size, size+1, ... are given to the batch and the
leaves are inserted with the hashes their append computed, all before commit. A second
writer, in this process or another replica, waits on the row lock and then reads the
new size: leaf indexes are dense and unique, and the leaf order is the commit order. A
rolled-back batch takes its indexes with it (no sequence gaps). The primary key on the
leaf index makes a violation of this a failed transaction, never a silent fork.

The append path is cheap on purpose (bench/audit_hash.py): driver-level SQL (SQLAlchemy's
statement construction costs ~60 µs per statement here), the tree's right edge kept by
the writer between batches (`Tip`) and re-read only when another writer moved the log,
and no row updated per batch (on SQLite each extra page written costs its share of the
fsync).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gateway.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from gateway.audit.tlog import (
    HASH_SIZE,
    HashReader,
    Node,
    ProofError,
    append_leaves,
    completing_leaf,
    consistency_proof,
    frontier,
    inclusion_proof,
    leaf_hash,
    root_from_frontier,
)
from gateway.db.models import TlogCheckpoint, TlogHead, TlogLeaf

LEAF = TlogLeaf.__table__  # type: ignore[attr-defined]
HEAD = TlogHead.__table__  # type: ignore[attr-defined]
CHECKPOINT = TlogCheckpoint.__table__  # type: ignore[attr-defined]


class LogStateError(RuntimeError):
    """The log's tables are not in a state the writer can append to (not migrated?)."""


@dataclass(frozen=True)
class LeafInput:
    decision_id: str
    kind: str
    event: bytes  # canonical bytes (gateway/audit/canonical.py)


@dataclass(frozen=True)
class CheckpointPolicy:
    signer: NoteSigner
    every: int
    interval: timedelta


@dataclass(frozen=True)
class Tip:
    """The tree's right edge as a writer last left it: its size and frontier, and the size
    of the last checkpoint it knew of. Kept by the audit writer between batches so that
    an append reads one number from the database, not the whole edge."""

    size: int
    frontier: tuple[bytes, ...]
    signed_size: int


@dataclass(frozen=True)
class Appended:
    first_index: int
    size: int
    checkpoint: Checkpoint | None
    tip: Tip  # valid once this transaction commits


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def _sql(conn: Connection, text: str) -> str:
    """`text` with ? placeholders, in the driver's paramstyle (asyncpg wants $1, $2...)."""
    if conn.dialect.paramstyle == "qmark":
        return text
    parts = text.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


_INSERT_LEAF_QMARK = (
    "INSERT INTO tlog_leaf (leaf_index, decision_id, kind, leaf_hash, nodes, event)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# The SQL text once per paramstyle (True: qmark), not rebuilt per batch; the driver keeps
# the statement prepared (sqlite3's statement cache, asyncpg's prepared statements).
_INSERT_LEAF = {
    True: _INSERT_LEAF_QMARK,
    False: _INSERT_LEAF_QMARK.replace("?, ?, ?, ?, ?, ?", "$1, $2, $3, $4, $5, $6"),
}


def _lock(conn: Connection) -> int:
    """Take the append lock until commit; return the log's size as committed now.

    On PostgreSQL the lock is the `tlog_head` row (SELECT ... FOR UPDATE): a writer in
    another process or replica waits here, then sees the committed size. SQLite allows
    one writing transaction at a time anyway.
    """
    if conn.dialect.name == "postgresql":
        locked = conn.exec_driver_sql("SELECT id FROM tlog_head WHERE id = 1 FOR UPDATE").first()
        if locked is None:
            raise LogStateError("tlog_head has no row: run `tac-gateway migrate`")
    last = conn.exec_driver_sql("SELECT max(leaf_index) FROM tlog_leaf").scalar()
    return 0 if last is None else int(last) + 1


def _tip(conn: Connection, size: int, known: Tip | None) -> Tip:
    """The tip at `size`: the writer's own if still current, else read (O(log n) rows)."""
    if known is not None and known.size == size:
        return known
    # Another writer appended since (or first use): read the edge from the stored nodes.
    signed = conn.execute(select(HEAD.c.checkpoint_size).where(HEAD.c.id == 1)).scalar()
    edge = frontier(size, hash_reader(conn))
    return Tip(size, tuple(edge), int(signed or 0))


def append(
    conn: Connection,
    leaves: Sequence[LeafInput],
    *,
    now: datetime,
    policy: CheckpointPolicy | None = None,
    known: Tip | None = None,
) -> Appended:
    """Append `leaves` in order; sign a checkpoint if `policy.every` leaves await one.

    `known` is the tip this writer left after its last commit, if any. (Checkpoints by
    time are `checkpoint_if_due`'s, run by a timer: the log may be idle.)
    """
    if known is not None and conn.dialect.name == "sqlite":
        # One writer on SQLite: our own tip is current. Were it not (a second writer on
        # the same file), the insert below hits an existing leaf index and fails the
        # transaction whole; the audit writer then re-reads the tip and retries.
        tip = known
    else:
        tip = _tip(conn, _lock(conn), known)
    size = tip.size
    hashes = [leaf_hash(leaf.event) for leaf in leaves]
    completed, edge = append_leaves(size, tip.frontier, hashes)
    if leaves:
        conn.exec_driver_sql(
            _INSERT_LEAF[conn.dialect.paramstyle == "qmark"],
            [
                (size + i, leaf.decision_id, leaf.kind, h, b"".join(nodes), leaf.event)
                for i, (leaf, h, nodes) in enumerate(zip(leaves, hashes, completed, strict=True))
            ],
        )
    new_size = size + len(leaves)
    checkpoint = None
    signed = tip.signed_size
    if policy is not None and new_size - signed >= policy.every:
        checkpoint = _sign(conn, new_size, edge, now, policy.signer)
        signed = new_size
    return Appended(size, new_size, checkpoint, Tip(new_size, tuple(edge), signed))


def checkpoint_if_due(
    conn: Connection, *, now: datetime, policy: CheckpointPolicy, force: bool = False
) -> Checkpoint | None:
    """Sign the current tree if leaves await a signature and `policy.interval` has passed
    since the last checkpoint (or `force`); the gateway calls this on a timer."""
    size = _lock(conn)
    head = conn.execute(
        select(HEAD.c.checkpoint_size, HEAD.c.checkpoint_at).where(HEAD.c.id == 1)
    ).first()
    if head is None:
        raise LogStateError("tlog_head has no row: run `tac-gateway migrate`")
    if size == head.checkpoint_size:
        return None
    if not force and head.checkpoint_at is not None and now - head.checkpoint_at < policy.interval:
        return None
    return _sign(conn, size, frontier(size, hash_reader(conn)), now, policy.signer)


def _sign(
    conn: Connection, size: int, edge: Sequence[bytes], now: datetime, signer: NoteSigner
) -> Checkpoint:
    checkpoint = Checkpoint(signer.name, size, root_from_frontier(edge))
    note = sign_checkpoint(checkpoint, signer)
    conn.execute(
        insert(CHECKPOINT),
        {"size": size, "root": checkpoint.root, "note": note, "created_at": now},
    )
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(checkpoint_size=size, checkpoint_at=now))
    return checkpoint


# ---------------------------------------------------------------------------- reading


def hash_reader(conn: Connection) -> HashReader:
    """Reads stored nodes from the leaves that completed them (one query per call)."""

    def read(nodes: Sequence[Node]) -> list[bytes]:
        if not nodes:
            return []
        wanted = sorted({completing_leaf(node) for node in nodes})
        rows = conn.execute(
            select(LEAF.c.leaf_index, LEAF.c.leaf_hash, LEAF.c.nodes).where(
                LEAF.c.leaf_index.in_(wanted)
            )
        )
        by_leaf = {i: [bytes(h), *_split(bytes(n))] for i, h, n in rows}
        out = []
        for level, k in nodes:
            stored = by_leaf.get(completing_leaf((level, k)), [])
            if level >= len(stored):
                raise ProofError(f"stored hash of node ({level}, {k}) is missing")
            out.append(stored[level])
        return out

    return read


def pruned_size(conn: Connection) -> int:
    """Leaves below this index were archived (events removed, hashes kept)."""
    return int(conn.execute(select(HEAD.c.pruned_size).where(HEAD.c.id == 1)).scalar() or 0)


def archivable_size(conn: Connection, *, before: datetime) -> int:
    """The largest checkpoint signed before `before`: every leaf it covers is older."""
    found = conn.execute(
        select(CHECKPOINT.c.size)
        .where(CHECKPOINT.c.created_at < before)
        .order_by(CHECKPOINT.c.size.desc())
        .limit(1)
    ).scalar()
    return int(found or 0)


def prune(conn: Connection, *, below: int) -> int:
    """Remove the events of leaves below `below` (a checkpoint size), keeping their hashes,
    so proofs for later leaves and consistency between checkpoints still work. Archive
    them first (`export.export_log`). Returns the number of leaves pruned."""
    start = pruned_size(conn)
    if below <= start:
        return 0
    if checkpoint_of_size(conn, below) is None:
        raise ValueError(f"prune only up to a checkpoint: none is signed at size {below}")
    conn.execute(
        update(LEAF).where(LEAF.c.leaf_index >= start, LEAF.c.leaf_index < below).values(event=b"")
    )
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(pruned_size=below))
    return below - start


def size(conn: Connection) -> int:
    """The number of leaves (the index after the last one)."""
    last = conn.exec_driver_sql("SELECT max(leaf_index) FROM tlog_leaf").scalar()
    return 0 if last is None else int(last) + 1


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    created_at: datetime


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(row.size, bytes(row.root), row.note, row.created_at)


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(select(CHECKPOINT).order_by(CHECKPOINT.c.size.desc()).limit(1)).first()
    return None if row is None else _checkpoint(row)


def checkpoint_of_size(conn: Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute(select(CHECKPOINT).where(CHECKPOINT.c.size == size)).first()
    return None if row is None else _checkpoint(row)


def checkpoints(
    conn: Connection, *, min_size: int = 0, max_size: int | None = None
) -> list[StoredCheckpoint]:
    query = select(CHECKPOINT).where(CHECKPOINT.c.size >= min_size)
    if max_size is not None:
        query = query.where(CHECKPOINT.c.size <= max_size)
    return [_checkpoint(r) for r in conn.execute(query.order_by(CHECKPOINT.c.size))]


@dataclass(frozen=True)
class StoredLeaf:
    index: int
    decision_id: str
    kind: str
    leaf_hash: bytes
    nodes: list[bytes]
    event: bytes


def leaf_of(conn: Connection, *, decision_id: str, kind: str = "decision") -> StoredLeaf | None:
    row = conn.execute(
        select(LEAF).where(LEAF.c.decision_id == decision_id, LEAF.c.kind == kind)
    ).first()
    return None if row is None else _leaf(row)


def _leaf(row: Any) -> StoredLeaf:
    return StoredLeaf(
        row.leaf_index,
        row.decision_id,
        row.kind,
        bytes(row.leaf_hash),
        _split(bytes(row.nodes)),
        bytes(row.event),
    )


def iter_leaves(
    conn: Connection, *, start: int = 0, end: int | None = None, batch: int = 1000
) -> Iterator[StoredLeaf]:
    """Leaves with start <= index < end in index order, read `batch` rows at a time."""
    after = start
    while True:
        query = select(LEAF).where(LEAF.c.leaf_index >= after)
        if end is not None:
            query = query.where(LEAF.c.leaf_index < end)
        rows = conn.execute(query.order_by(LEAF.c.leaf_index).limit(batch)).all()
        for r in rows:
            yield _leaf(r)
        if len(rows) < batch:
            return
        after = rows[-1].leaf_index + 1


def prove_inclusion(conn: Connection, *, index: int, size: int) -> list[bytes]:
    return inclusion_proof(index, size, hash_reader(conn))


def prove_consistency(conn: Connection, *, old_size: int, new_size: int) -> list[bytes]:
    return consistency_proof(old_size, new_size, hash_reader(conn))
