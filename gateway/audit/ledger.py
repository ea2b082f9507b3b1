"""The audit log's storage: append leaves in order, sign checkpoints, serve proofs.

Synchronous functions over a SQLAlchemy `Connection`, called inside the caller's
transaction: on SQLite from the audit writer thread, on PostgreSQL through
`AsyncConnection.run_sync`. A batch of leaves is appended in the same transaction as the
audit rows it describes, so a leaf exists exactly when its row does.

Order. Every append starts by locking the single `tlog_head` row (SELECT ... FOR UPDATE on
PostgreSQL; SQLite has one writer at a time anyway), which holds the tree size and its
right edge. Indexes size, size+1, ... are given to the batch, the leaves and stored hashes
are inserted, and the head moves on, all before commit. A second writer, in this process
or another replica, waits on the row lock and then reads the committed size: leaf indexes
are dense and unique, and the leaf order is the commit order. A rolled-back batch takes
its indexes with it (no sequence gaps). The primary keys on leaf index and stored index
make a violation of this a failed transaction, never a silent fork.
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
    ProofError,
    append_leaves,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_frontier,
)
from gateway.db.models import TlogCheckpoint, TlogHash, TlogHead, TlogLeaf

LEAF = TlogLeaf.__table__  # type: ignore[attr-defined]
HASH = TlogHash.__table__  # type: ignore[attr-defined]
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
class Appended:
    first_index: int
    size: int
    checkpoint: Checkpoint | None


@dataclass(frozen=True)
class _Head:
    size: int
    frontier: list[bytes]
    checkpoint_size: int
    checkpoint_at: datetime | None


def _lock_head(conn: Connection) -> _Head:
    row = conn.execute(select(HEAD).where(HEAD.c.id == 1).with_for_update()).first()
    if row is None:
        raise LogStateError("tlog_head has no row: run `tac-gateway migrate`")
    blob = bytes(row.frontier)
    frontier = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
    return _Head(row.size, frontier, row.checkpoint_size, row.checkpoint_at)


def append(
    conn: Connection,
    leaves: Sequence[LeafInput],
    *,
    now: datetime,
    policy: CheckpointPolicy | None = None,
) -> Appended:
    """Append `leaves` in order; sign a checkpoint too if `policy` says one is due."""
    head = _lock_head(conn)
    hashes = [leaf_hash(leaf.event) for leaf in leaves]
    stored, frontier = append_leaves(head.size, head.frontier, hashes)
    size = head.size + len(leaves)
    if leaves:
        conn.execute(
            insert(LEAF),
            [
                {
                    "leaf_index": head.size + i,
                    "decision_id": leaf.decision_id,
                    "kind": leaf.kind,
                    "leaf_hash": h,
                    "event": leaf.event,
                }
                for i, (leaf, h) in enumerate(zip(leaves, hashes, strict=True))
            ],
        )
        conn.execute(insert(HASH), [{"idx": idx, "hash": h} for idx, h in stored])
    values: dict[str, object] = {"size": size, "frontier": b"".join(frontier)}
    checkpoint = None
    if policy is not None and _due(head, size, now, policy):
        checkpoint = _sign(conn, size, frontier, now, policy.signer)
        values |= {"checkpoint_size": size, "checkpoint_at": now}
    conn.execute(update(HEAD).where(HEAD.c.id == 1).values(**values))
    return Appended(head.size, size, checkpoint)


def checkpoint_if_due(
    conn: Connection, *, now: datetime, policy: CheckpointPolicy, force: bool = False
) -> Checkpoint | None:
    """Sign the current tree if events wait for a signature and one is due (or `force`)."""
    head = _lock_head(conn)
    if head.size == head.checkpoint_size or not (force or _due(head, head.size, now, policy)):
        return None
    checkpoint = _sign(conn, head.size, head.frontier, now, policy.signer)
    conn.execute(
        update(HEAD).where(HEAD.c.id == 1).values(checkpoint_size=head.size, checkpoint_at=now)
    )
    return checkpoint


def _due(head: _Head, size: int, now: datetime, policy: CheckpointPolicy) -> bool:
    if size == head.checkpoint_size:
        return False
    if size - head.checkpoint_size >= policy.every:
        return True
    return head.checkpoint_at is None or now - head.checkpoint_at >= policy.interval


def _sign(
    conn: Connection, size: int, frontier: list[bytes], now: datetime, signer: NoteSigner
) -> Checkpoint:
    checkpoint = Checkpoint(signer.name, size, root_from_frontier(frontier))
    note = sign_checkpoint(checkpoint, signer)
    conn.execute(
        insert(CHECKPOINT),
        {"size": size, "root": checkpoint.root, "note": note, "created_at": now},
    )
    return checkpoint


# ---------------------------------------------------------------------------- reading


def hash_reader(conn: Connection) -> HashReader:
    def read(indexes: Sequence[int]) -> list[bytes]:
        if not indexes:
            return []
        rows = conn.execute(select(HASH.c.idx, HASH.c.hash).where(HASH.c.idx.in_(indexes)))
        found = {idx: bytes(h) for idx, h in rows}
        missing = [i for i in indexes if i not in found]
        if missing:
            raise ProofError(f"stored hashes missing at {missing[:5]}")
        return [found[i] for i in indexes]

    return read


def size(conn: Connection) -> int:
    row = conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).first()
    if row is None:
        raise LogStateError("tlog_head has no row: run `tac-gateway migrate`")
    return int(row.size)


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
    event: bytes


def leaf_of(conn: Connection, *, decision_id: str, kind: str = "decision") -> StoredLeaf | None:
    row = conn.execute(
        select(LEAF).where(LEAF.c.decision_id == decision_id, LEAF.c.kind == kind)
    ).first()
    return None if row is None else _leaf(row)


def _leaf(row: Any) -> StoredLeaf:
    return StoredLeaf(
        row.leaf_index, row.decision_id, row.kind, bytes(row.leaf_hash), bytes(row.event)
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


def iter_stored_hashes(
    conn: Connection, *, start: int, end: int | None = None, batch: int = 4000
) -> Iterator[tuple[int, bytes]]:
    """Stored hashes with start <= idx < end, in index order."""
    after = start
    while end is None or after < end:
        query = select(HASH.c.idx, HASH.c.hash).where(HASH.c.idx >= after)
        if end is not None:
            query = query.where(HASH.c.idx < end)
        rows = conn.execute(query.order_by(HASH.c.idx).limit(batch)).all()
        for idx, h in rows:
            yield idx, bytes(h)
        if len(rows) < batch:
            return
        after = rows[-1].idx + 1


def prove_inclusion(conn: Connection, *, index: int, size: int) -> list[bytes]:
    return inclusion_proof(index, size, hash_reader(conn))


def prove_consistency(conn: Connection, *, old_size: int, new_size: int) -> list[bytes]:
    return consistency_proof(old_size, new_size, hash_reader(conn))
