"""Export → offline verification round trip, with no database, and every edit of it fails."""

from __future__ import annotations

import io
from collections.abc import Callable

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import ledger
from gateway.audit.checkpoint import NoteSigner, NoteVerifier
from gateway.audit.export import export_log
from gateway.audit.verify import Report, verify_export
from tests.audit.conftest import T0, LogDb

Lines = list[bytes]


async def export(db: LogDb, signer: NoteSigner, **kw: int) -> Lines:
    out = io.BytesIO()
    await db.run(export_log, out.write, origin=signer.name, vkey=signer.verifier.vkey, **kw)
    return out.getvalue().splitlines(keepends=True)


@pytest.fixture
async def log(log_db: LogDb, policy: ledger.CheckpointPolicy) -> LogDb:
    for start in range(0, 30, 3):
        await log_db.append(range(start, start + 3), policy)
    # Two leaves after the last checkpoint: not signed yet, so not exported.
    await log_db.run(ledger.checkpoint_if_due, now=T0, policy=policy, force=True)
    await log_db.append([30, 31], policy)
    return log_db


def check(lines: Lines, verifier: NoteVerifier) -> Report:
    return verify_export(lines, verifier=verifier)


async def test_round_trip(log: LogDb, signer: NoteSigner) -> None:
    lines = await export(log, signer)
    header = orjson.loads(lines[0])
    assert header["start"] == 0 and header["frontier"] == []
    report = check(lines, NoteVerifier.from_vkey(signer.verifier.vkey))
    assert report.ok, report.problem
    assert report.leaves == report.size == 30  # up to the latest checkpoint
    assert report.checkpoints == len(await log.run(ledger.checkpoints))


async def test_an_export_of_the_recent_part_verifies_from_its_frontier(
    log: LogDb, signer: NoteSigner
) -> None:
    lines = await export(log, signer, start=13)
    report = check(lines, signer.verifier)
    assert report.ok, report.problem
    assert report.leaves == 30 - 13


def _edit_event(lines: Lines) -> Lines:
    out = list(lines)
    obj = orjson.loads(out[5])
    obj["event"]["decision"] = "deny"
    out[5] = orjson.dumps(obj) + b"\n"
    return out


def _drop_leaf(lines: Lines) -> Lines:
    return [line for line in lines if b'"index":6,' not in line]


def _swap(lines: Lines) -> Lines:
    out = list(lines)
    a = next(i for i, line in enumerate(out) if b'"index":7,' in line)
    b = next(i for i, line in enumerate(out) if b'"index":8,' in line)
    ea, eb = orjson.loads(out[a])["event"], orjson.loads(out[b])["event"]
    out[a] = orjson.dumps({"index": 7, "event": eb}) + b"\n"
    out[b] = orjson.dumps({"index": 8, "event": ea}) + b"\n"
    return out


def _truncate_with_checkpoint(lines: Lines) -> Lines:
    # Cut the last leaf but keep the final checkpoint line.
    return [*lines[:-2], lines[-1]]


def _truncate_signature_free_tail(lines: Lines) -> Lines:
    return lines[:-1]  # the last checkpoint line gone: the last leaves are unsigned


def _forge_checkpoint(lines: Lines) -> Lines:
    out = list(lines)
    note = orjson.loads(out[-1])["checkpoint"]
    out[-1] = orjson.dumps({"checkpoint": note.replace("\n30\n", "\n29\n")}) + b"\n"
    return out


def _add_leaf(lines: Lines) -> Lines:
    extra = orjson.dumps({"index": 30, "event": {"decision": "allow"}}) + b"\n"
    return [*lines, extra]


def _bad_frontier(lines: Lines) -> Lines:
    header = orjson.loads(lines[0])
    header["frontier"] = ["A" * 43 + "="] * len(header["frontier"])
    return [orjson.dumps(header) + b"\n", *lines[1:]]


@pytest.mark.parametrize(
    "edit",
    [
        _edit_event,
        _drop_leaf,
        _swap,
        _truncate_with_checkpoint,
        _truncate_signature_free_tail,
        _forge_checkpoint,
        _add_leaf,
    ],
)
async def test_a_modified_export_fails(
    log: LogDb, signer: NoteSigner, edit: Callable[[Lines], Lines]
) -> None:
    lines = await export(log, signer)
    assert check(lines, signer.verifier).ok
    report = check(edit(lines), signer.verifier)
    assert not report.ok


async def test_a_wrong_frontier_fails(log: LogDb, signer: NoteSigner) -> None:
    lines = await export(log, signer, start=13)
    assert not check(_bad_frontier(lines), signer.verifier).ok


async def test_an_export_checked_against_another_key_fails(log: LogDb, signer: NoteSigner) -> None:
    lines = await export(log, signer)
    other = NoteSigner(signer.name, Ed25519PrivateKey.generate()).verifier
    report = check(lines, other)
    assert report.problem and "not signed by" in report.problem.message


def test_garbage_is_not_an_export(signer: NoteSigner) -> None:
    for lines in ([], [b"{}\n"], [b"not json\n"]):
        assert not check(lines, signer.verifier).ok
