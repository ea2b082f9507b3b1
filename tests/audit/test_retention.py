"""Retention: old events are archived to a file with their checkpoints and pruned from the
database; the archive verifies offline, and what remains still verifies and proves."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from gateway.audit import ledger
from gateway.audit.checkpoint import NoteSigner, open_checkpoint
from gateway.audit.export import export_log
from gateway.audit.tlog import verify_inclusion
from gateway.audit.verify import verify_export, verify_log
from tests.audit.conftest import T0, LogDb


async def test_archive_prune_and_verify_what_remains(
    log_db: LogDb, policy: ledger.CheckpointPolicy, signer: NoteSigner
) -> None:
    # Day 0: leaves 0..19; day 40: leaves 20..34 (a checkpoint every 5).
    for start in range(0, 20, 5):
        await log_db.append(range(start, start + 5), policy, now=T0)
    for start in range(20, 35, 5):
        await log_db.append(range(start, start + 5), policy, now=T0 + timedelta(days=40))

    cut = await log_db.run(ledger.archivable_size, before=T0 + timedelta(days=10))
    assert cut == 20  # the last checkpoint signed before the cutoff
    archive = io.BytesIO()
    await log_db.run(
        export_log, archive.write, origin=signer.name, vkey=signer.verifier.vkey, end=cut
    )
    assert await log_db.run(ledger.prune, below=cut) == 20
    assert await log_db.run(ledger.prune, below=cut) == 0

    rows = await log_db.sql("SELECT count(*) FROM tlog_leaf WHERE event = :e", e=b"")
    assert rows[0][0] == 20
    report = verify_export(archive.getvalue().splitlines(), verifier=signer.verifier)
    assert report.ok and report.leaves == 20
    report = await log_db.run(verify_log, verifier=signer.verifier)
    assert report.ok, report.problem
    assert (report.leaves, report.size) == (15, 35)
    refused = await log_db.run(verify_log, verifier=signer.verifier, start=0)
    assert refused.problem and "archived" in refused.problem.message

    # Proofs still work for every leaf, pruned or not: the hashes were kept.
    latest = await log_db.run(ledger.latest_checkpoint)
    assert latest is not None
    cp = open_checkpoint(latest.note, signer.verifier)
    for i in (3, 19, 20, 34):
        [(h,)] = await log_db.sql("SELECT leaf_hash FROM tlog_leaf WHERE leaf_index = :i", i=i)
        proof = await log_db.run(ledger.prove_inclusion, index=i, size=cp.size)
        verify_inclusion(index=i, size=cp.size, leaf=bytes(h), proof=proof, root=cp.root)

    # Tampering with what remains is still caught.
    await log_db.sql("DELETE FROM tlog_leaf WHERE leaf_index = 27")
    report = await log_db.run(verify_log, verifier=signer.verifier)
    assert report.problem and report.problem.leaf_index == 27


async def test_prune_only_up_to_a_checkpoint(
    log_db: LogDb, policy: ledger.CheckpointPolicy
) -> None:
    await log_db.append(range(7), policy)
    with pytest.raises(ValueError, match="checkpoint"):
        await log_db.run(ledger.prune, below=6)
