"""Every kind of tampering with the stored log is caught by `verify_log`, naming where.

Each test builds the same honest log (23 leaves appended 4 at a time, a checkpoint every
5: signed at sizes 8, 16 and 23), checks that it verifies, tampers with it
through plain SQL as someone with database access would, and checks that verification
fails at the right leaf or checkpoint.
"""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import ledger
from gateway.audit.canonical import canonical_bytes
from gateway.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from gateway.audit.tlog import append_leaves, leaf_hash, root_from_frontier
from gateway.audit.verify import Report, verify_log
from tests.audit.conftest import T0, LogDb

SIZE = 23
CHECKPOINTS = [8, 16, 23]


@pytest.fixture
async def honest(log_db: LogDb, policy: ledger.CheckpointPolicy, signer: NoteSigner) -> LogDb:
    for start in range(0, SIZE, 4):
        await log_db.append(range(start, min(start + 4, SIZE)), policy)
    await log_db.run(ledger.checkpoint_if_due, now=T0, policy=policy, force=True)
    assert [cp.size for cp in await log_db.run(ledger.checkpoints)] == CHECKPOINTS
    report = await verify(log_db, signer)
    assert report.ok, report.problem
    assert (report.leaves, report.size) == (SIZE, SIZE)
    return log_db


async def verify(db: LogDb, signer: NoteSigner, **kw: object) -> Report:
    return await db.run(verify_log, verifier=signer.verifier, **kw)


async def event_of(db: LogDb, index: int) -> dict[str, object]:
    [(raw,)] = await db.sql("SELECT event FROM tlog_leaf WHERE leaf_index = :i", i=index)
    return dict(orjson.loads(bytes(raw)))


async def rewrite_event(db: LogDb, index: int, *, fix_leaf_hash: bool) -> bytes:
    """Turn leaf `index`'s allow into a deny; optionally recompute the row's leaf hash."""
    event = await event_of(db, index)
    event["decision"] = "deny"
    data = canonical_bytes(event)
    h = leaf_hash(data)
    if fix_leaf_hash:
        await db.sql(
            "UPDATE tlog_leaf SET event = :e, leaf_hash = :h WHERE leaf_index = :i",
            e=data,
            h=h,
            i=index,
        )
    else:
        await db.sql("UPDATE tlog_leaf SET event = :e WHERE leaf_index = :i", e=data, i=index)
    return h


async def rebuild_tree(db: LogDb) -> bytes:
    """The thorough attacker: recompute every stored hash from the leaves; the new root."""
    rows = await db.sql("SELECT leaf_index, leaf_hash FROM tlog_leaf ORDER BY leaf_index")
    completed, edge = append_leaves(0, [], [bytes(h) for _, h in rows])
    for (index, _), nodes in zip(rows, completed, strict=True):
        await db.sql(
            "UPDATE tlog_leaf SET nodes = :n WHERE leaf_index = :i", n=b"".join(nodes), i=index
        )
    return root_from_frontier(edge)


async def test_edited_field_is_caught_at_its_leaf(honest: LogDb, signer: NoteSigner) -> None:
    await rewrite_event(honest, 7, fix_leaf_hash=False)
    report = await verify(honest, signer)
    assert not report.ok and report.problem
    assert report.problem.leaf_index == 7
    assert "does not match its leaf hash" in report.problem.message
    assert report.leaves == 7  # leaves 0..6 checked out before it


async def test_edited_field_with_its_hash_rewritten_is_caught_by_the_stored_tree(
    honest: LogDb, signer: NoteSigner
) -> None:
    await rewrite_event(honest, 7, fix_leaf_hash=True)
    report = await verify(honest, signer)
    assert report.problem and report.problem.leaf_index == 7
    assert "stored tree hashes" in report.problem.message


async def test_edited_field_with_the_whole_tree_rebuilt_is_caught_by_the_signature(
    honest: LogDb, signer: NoteSigner
) -> None:
    await rewrite_event(honest, 7, fix_leaf_hash=True)
    await rebuild_tree(honest)
    report = await verify(honest, signer)
    # Only the signed roots are left to catch it: the first checkpoint after leaf 7.
    assert report.problem and report.problem.checkpoint_size is not None
    assert report.problem.leaf_index is not None
    assert report.problem.leaf_index <= 7 < report.problem.checkpoint_size
    assert "root does not match" in report.problem.message


async def test_deleted_leaf_is_caught(honest: LogDb, signer: NoteSigner) -> None:
    await honest.sql("DELETE FROM tlog_leaf WHERE leaf_index = 11")
    report = await verify(honest, signer)
    assert report.problem and report.problem.leaf_index == 11
    assert "missing" in report.problem.message


async def test_deleted_leaf_with_renumbering_and_rebuilt_tree_is_caught(
    honest: LogDb, signer: NoteSigner
) -> None:
    await honest.sql("DELETE FROM tlog_leaf WHERE leaf_index = 11")
    await honest.sql("UPDATE tlog_leaf SET leaf_index = leaf_index + 1000 WHERE leaf_index > 11")
    await honest.sql("UPDATE tlog_leaf SET leaf_index = leaf_index - 1001 WHERE leaf_index > 1000")
    await rebuild_tree(honest)
    report = await verify(honest, signer)
    assert report.problem and report.problem.checkpoint_size is not None
    assert report.problem.leaf_index is not None and report.problem.leaf_index <= 11


async def test_reordered_leaves_are_caught_at_the_first(honest: LogDb, signer: NoteSigner) -> None:
    await honest.sql("UPDATE tlog_leaf SET leaf_index = -1 WHERE leaf_index = 4")
    await honest.sql("UPDATE tlog_leaf SET leaf_index = 4 WHERE leaf_index = 9")
    await honest.sql("UPDATE tlog_leaf SET leaf_index = 9 WHERE leaf_index = -1")
    report = await verify(honest, signer)
    assert report.problem and report.problem.leaf_index == 4
    assert "moved" in report.problem.message


async def test_reordered_leaves_with_rebuilt_tree_are_caught(
    honest: LogDb, signer: NoteSigner
) -> None:
    await honest.sql("UPDATE tlog_leaf SET leaf_index = -1 WHERE leaf_index = 4")
    await honest.sql("UPDATE tlog_leaf SET leaf_index = 4 WHERE leaf_index = 9")
    await honest.sql("UPDATE tlog_leaf SET leaf_index = 9 WHERE leaf_index = -1")
    await rebuild_tree(honest)
    report = await verify(honest, signer)
    # The first signed root over leaf 4 is the checkpoint at 8.
    assert report.problem and report.problem.checkpoint_size == 8
    assert report.problem.leaf_index is not None and report.problem.leaf_index <= 4


async def test_truncated_tail_is_caught_by_the_last_checkpoint(
    honest: LogDb, signer: NoteSigner
) -> None:
    await honest.sql("DELETE FROM tlog_leaf WHERE leaf_index >= 20")
    report = await verify(honest, signer)
    assert report.problem and report.problem.leaf_index == 20
    assert report.problem.checkpoint_size == SIZE


async def test_truncation_hidden_by_deleting_checkpoints_is_caught_by_a_kept_checkpoint(
    honest: LogDb, signer: NoteSigner
) -> None:
    kept = await honest.run(ledger.latest_checkpoint)
    assert kept is not None and kept.size == SIZE
    await honest.sql("DELETE FROM tlog_leaf WHERE leaf_index >= 20")
    await honest.sql("DELETE FROM tlog_checkpoint WHERE size > 20")
    await rebuild_tree(honest)
    # Without outside knowledge the shorter log is self-consistent...
    assert (await verify(honest, signer)).ok
    # ...but not with the checkpoint an auditor kept from before.
    report = await verify(honest, signer, trusted=[kept.note])
    assert report.problem and report.problem.checkpoint_size == SIZE
    assert "removed" in report.problem.message


async def test_forged_checkpoint_is_caught(honest: LogDb, signer: NoteSigner) -> None:
    # A checkpoint over the tampered tree, signed by a key that is not the log's.
    await rewrite_event(honest, 2, fix_leaf_hash=True)
    root = await rebuild_tree(honest)
    forger = NoteSigner(signer.name, Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint(signer.name, SIZE, root), forger)
    await honest.sql(
        "UPDATE tlog_checkpoint SET note = :n, root = :r WHERE size = :s", n=note, r=root, s=SIZE
    )
    report = await verify(honest, signer)
    assert report.problem and report.problem.checkpoint_size == SIZE
    assert "not signed by" in report.problem.message


async def test_checkpoint_row_edited_without_its_note_is_caught(
    honest: LogDb, signer: NoteSigner
) -> None:
    await honest.sql("UPDATE tlog_checkpoint SET root = :r WHERE size = 16", r=b"\x00" * 32)
    report = await verify(honest, signer)
    assert report.problem and report.problem.checkpoint_size == 16


async def test_two_inconsistent_checkpoints_are_caught(
    honest: LogDb, signer: NoteSigner, policy: ledger.CheckpointPolicy
) -> None:
    """The log signed a checkpoint of a different history (a fork) with its own key."""
    other = [leaf_hash(canonical_bytes({"forked": i})) for i in range(10)]
    _, edge = append_leaves(0, [], other)
    fork = sign_checkpoint(Checkpoint(signer.name, 10, root_from_frontier(edge)), signer)
    # Handed to the verifier as a checkpoint someone saw: it contradicts the log.
    report = await verify(honest, signer, trusted=[fork])
    assert report.problem and report.problem.checkpoint_size == 10
    # Stored in the database instead (a size with no checkpoint yet): caught as well.
    await honest.sql(
        "INSERT INTO tlog_checkpoint (size, root, note, created_at) "
        "VALUES (10, :r, :n, CURRENT_TIMESTAMP)",
        r=root_from_frontier(edge),
        n=fork,
    )
    report = await verify(honest, signer)
    assert report.problem and report.problem.checkpoint_size == 10


async def test_range_verification_starts_mid_log(honest: LogDb, signer: NoteSigner) -> None:
    report = await verify(honest, signer, start=6, end=12)
    assert report.ok, report.problem
    assert report.leaves == 16 - 6  # up to the checkpoint at 16, which covers leaf 11
    await rewrite_event(honest, 9, fix_leaf_hash=False)
    report = await verify(honest, signer, start=6, end=12)
    assert report.problem and report.problem.leaf_index == 9
