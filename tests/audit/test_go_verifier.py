"""An independent implementation agrees: Go's sumdb/note and sumdb/tlog check our output.

tools/tlogverify is built by scripts/test from the Go module proxy (versions pinned in its
go.mod and go.sum). It verifies our checkpoint signatures, inclusion proofs (C2SP
tlog-proof files) and consistency proofs, and refuses altered ones.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import ledger
from gateway.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from gateway.audit.proofs import ConsistencyProof, InclusionProof
from gateway.audit.verify import check_consistency, check_inclusion
from tests.audit.conftest import T0, LogDb


def run(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.fixture
async def log(log_db: LogDb, policy: ledger.CheckpointPolicy) -> LogDb:
    for start in range(0, 37, 4):
        await log_db.append(range(start, start + 4), policy)
    await log_db.run(ledger.checkpoint_if_due, now=T0, policy=policy, force=True)
    return log_db


async def test_go_verifies_checkpoints_inclusion_and_consistency(
    log: LogDb, signer: NoteSigner, tlogverify_bin: Path, tmp_path: Path
) -> None:
    vkey = signer.verifier.vkey
    cps = await log.run(ledger.checkpoints)
    assert len(cps) >= 3
    notes = {}
    for cp in cps:
        notes[cp.size] = tmp_path / f"cp-{cp.size}.note"
        notes[cp.size].write_text(cp.note)
        done = run(tlogverify_bin, "checkpoint", "-vkey", vkey, notes[cp.size])
        assert done.returncode == 0, done.stderr
        assert f"size {cp.size} " in done.stdout

    latest = cps[-1]
    for index in (0, 1, 17, latest.size - 1):
        leaf = await log.run(ledger.leaf_of, decision_id=f"{index:032x}")
        assert leaf is not None and leaf.index == index
        path = await log.run(ledger.prove_inclusion, index=index, size=latest.size)
        proof = InclusionProof(index, path, latest.note)
        check_inclusion(proof, leaf.event, verifier=signer.verifier)  # ours agrees too
        (tmp_path / "leaf.json").write_bytes(leaf.event)
        (tmp_path / "incl.tlog-proof").write_text(proof.text())
        done = run(
            tlogverify_bin,
            "inclusion",
            "-vkey",
            vkey,
            "-leaf",
            tmp_path / "leaf.json",
            tmp_path / "incl.tlog-proof",
        )
        assert done.returncode == 0, done.stderr
        # The same proof for an edited event is refused.
        (tmp_path / "leaf.json").write_bytes(leaf.event.replace(b'"allow"', b'"deny"'))
        done = run(
            tlogverify_bin,
            "inclusion",
            "-vkey",
            vkey,
            "-leaf",
            tmp_path / "leaf.json",
            tmp_path / "incl.tlog-proof",
        )
        assert done.returncode == 1 and "not in the tree" in done.stderr

    for old, new in itertools.pairwise(cps):
        path = await log.run(ledger.prove_consistency, old_size=old.size, new_size=new.size)
        proof = ConsistencyProof(old.size, new.size, path)
        check_consistency(proof, old.note, new.note, verifier=signer.verifier)
        (tmp_path / "cons.proof").write_text(proof.text())
        done = run(
            tlogverify_bin,
            "consistency",
            "-vkey",
            vkey,
            "-old",
            notes[old.size],
            "-new",
            notes[new.size],
            tmp_path / "cons.proof",
        )
        assert done.returncode == 0, done.stderr


async def test_go_refuses_forged_and_inconsistent_checkpoints(
    log: LogDb, signer: NoteSigner, tlogverify_bin: Path, tmp_path: Path
) -> None:
    vkey = signer.verifier.vkey
    cps = await log.run(ledger.checkpoints)
    old, new = cps[0], cps[-1]
    forger = NoteSigner(signer.name, Ed25519PrivateKey.generate())
    forged = tmp_path / "forged.note"
    forged.write_text(sign_checkpoint(Checkpoint(signer.name, new.size, new.root), forger))
    done = run(tlogverify_bin, "checkpoint", "-vkey", vkey, forged)
    assert done.returncode == 1 and "signature" in done.stderr

    # A correctly signed checkpoint of another history is not consistent with the log's.
    fork = tmp_path / "fork.note"
    fork.write_text(sign_checkpoint(Checkpoint(signer.name, new.size, b"\x07" * 32), signer))
    (tmp_path / "old.note").write_text(old.note)
    path = await log.run(ledger.prove_consistency, old_size=old.size, new_size=new.size)
    (tmp_path / "cons.proof").write_text(ConsistencyProof(old.size, new.size, path).text())
    done = run(
        tlogverify_bin,
        "consistency",
        "-vkey",
        vkey,
        "-old",
        tmp_path / "old.note",
        "-new",
        fork,
        tmp_path / "cons.proof",
    )
    assert done.returncode == 1 and "does not extend" in done.stderr
