"""Appending to the log in the database: dense order, checkpoints on schedule, proofs."""

from __future__ import annotations

import asyncio
import itertools
import sys
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.audit import ledger
from gateway.audit.checkpoint import NoteSigner, open_checkpoint
from gateway.audit.tlog import leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.verify import verify_log
from tests.audit.conftest import T0, LogDb, leaf_input
from tests.support.services import REPO_ROOT


async def test_batches_get_dense_indexes_and_checkpoints_every_n(
    log_db: LogDb, policy: ledger.CheckpointPolicy
) -> None:
    sizes = []
    for batch in ([0, 1], [2], [3, 4, 5, 6], [7, 8, 9, 10, 11, 12]):
        appended = await log_db.append(batch, policy)
        assert appended.first_index == batch[0]
        sizes.append(appended.checkpoint.size if appended.checkpoint else None)
    # every=5: signed by the first batch that leaves 5 or more leaves unsigned.
    assert sizes == [None, None, 7, 13]
    cps = await log_db.run(ledger.checkpoints)
    assert [cp.size for cp in cps] == [7, 13]
    assert await log_db.run(ledger.size) == 13
    leaves = await log_db.run(lambda c: list(ledger.iter_leaves(c, batch=4)))
    assert [leaf.index for leaf in leaves] == list(range(13))
    assert all(leaf.leaf_hash == leaf_hash(leaf.event) for leaf in leaves)


async def test_checkpoints_by_time_and_on_demand(log_db: LogDb, signer: NoteSigner) -> None:
    """The timer's part: sign what waits once the interval has passed since the last one."""
    policy = ledger.CheckpointPolicy(signer=signer, every=1000, interval=timedelta(seconds=10))
    due = ledger.checkpoint_if_due
    assert await log_db.run(due, now=T0, policy=policy) is None  # nothing to sign
    assert (await log_db.append([0], policy, now=T0)).checkpoint is None
    first = await log_db.run(due, now=T0, policy=policy)  # no checkpoint yet: due at once
    assert first is not None and first.size == 1
    await log_db.append([1, 2], policy, now=T0 + timedelta(seconds=1))
    assert await log_db.run(due, now=T0 + timedelta(seconds=9), policy=policy) is None
    later = await log_db.run(due, now=T0 + timedelta(seconds=10), policy=policy)
    assert later is not None and later.size == 3
    assert await log_db.run(due, now=T0 + timedelta(days=1), policy=policy, force=True) is None
    await log_db.append([3], policy, now=T0 + timedelta(seconds=11))
    forced = await log_db.run(due, now=T0 + timedelta(seconds=11), policy=policy, force=True)
    assert forced is not None and forced.size == 4


async def test_proofs_from_the_database_verify_against_signed_checkpoints(
    log_db: LogDb, policy: ledger.CheckpointPolicy, signer: NoteSigner
) -> None:
    for start in range(0, 23, 3):
        await log_db.append(range(start, start + 3), policy)
    cps = [open_checkpoint(cp.note, signer.verifier) for cp in await log_db.run(ledger.checkpoints)]
    assert len(cps) >= 3
    for cp in cps:
        for i in range(cp.size):
            proof = await log_db.run(ledger.prove_inclusion, index=i, size=cp.size)
            leaf = leaf_hash(leaf_input(i).event)
            verify_inclusion(index=i, size=cp.size, leaf=leaf, proof=proof, root=cp.root)
    for old, new in itertools.pairwise(cps):
        proof = await log_db.run(ledger.prove_consistency, old_size=old.size, new_size=new.size)
        verify_consistency(
            old_size=old.size, new_size=new.size, old_root=old.root, new_root=new.root, proof=proof
        )
    found = await log_db.run(ledger.leaf_of, decision_id=f"{17:032x}")
    assert found is not None and found.index == 17


async def test_a_decision_has_one_leaf_of_each_kind(
    log_db: LogDb, policy: ledger.CheckpointPolicy
) -> None:
    await log_db.append([0], policy)
    with pytest.raises(IntegrityError):
        await log_db.append([0], policy)
    # The failed batch took nothing with it: the next append still gets index 1.
    assert (await log_db.append([1], policy)).first_index == 1


async def test_concurrent_writers_keep_the_log_dense_and_verifiable(
    pg_log_db: LogDb, policy: ledger.CheckpointPolicy, signer: NoteSigner
) -> None:
    """Many writers on their own connections (as replicas are): one order, no gap, no fork.

    PostgreSQL only: on SQLite the gateway runs one writer (docs/architecture.md).
    """
    log_db = pg_log_db

    async def writer(w: int) -> list[int]:
        firsts = []
        for b in range(10):
            base = 1000 * w + 10 * b
            firsts.append((await log_db.append(range(base, base + 3), policy)).first_index)
        return firsts

    firsts = await asyncio.gather(*(writer(w) for w in range(8)))
    all_firsts = sorted(f for fs in firsts for f in fs)
    assert all_firsts == list(range(0, 240, 3))
    report = await log_db.run(verify_log, verifier=signer.verifier)
    assert report.ok, report.problem
    assert report.leaves == 240


WRITER = """
import asyncio, sys
from gateway.audit import ledger
from gateway.db.engine import make_engine
from tests.audit.conftest import T0, leaf_input

async def main(url, first, batches):
    engine = make_engine(url)
    for b in range(batches):
        leaves = [leaf_input(first + 4 * b + j) for j in range(4)]
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: ledger.append(c, leaves, now=T0))
    await engine.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_two_processes_writing_at_once_keep_one_verifiable_log(
    pg_log_db: LogDb, pg_log_url: str, policy: ledger.CheckpointPolicy, signer: NoteSigner
) -> None:
    """Two OS processes (two gateway replicas' writers) append to one PostgreSQL log."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, pg_log_url, str(first), "40", cwd=REPO_ROOT
        )
        for first in (0, 100_000)
    ]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=90)
    assert codes == [0, 0]
    await pg_log_db.run(ledger.checkpoint_if_due, now=T0, policy=policy, force=True)
    leaves = await pg_log_db.run(lambda c: list(ledger.iter_leaves(c)))
    assert [leaf.index for leaf in leaves] == list(range(320))
    # Both writers' batches are interleaved, each batch contiguous.
    owners = [int(leaf.decision_id, 16) >= 100_000 for leaf in leaves]
    assert 0 < sum(owners) < 320 and all(len(set(owners[i : i + 4])) == 1 for i in range(0, 320, 4))
    report = await pg_log_db.run(verify_log, verifier=signer.verifier)
    assert report.ok, report.problem
