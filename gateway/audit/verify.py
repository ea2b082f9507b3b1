"""Verify the audit log: from its database, or from an export file with no database at all.

Both replay the leaves in index order, recompute every stored hash and the root at every
checkpoint, and stop at the first problem, naming the first leaf (or checkpoint) that
does not check out. Trust rests on the log's public key only: the database's own hashes
are compared, never believed. What can be caught:

- an event's field edited: its leaf hash differs; if that was rewritten too, the stored
  tree hashes differ, and in the end the signed root;
- a leaf deleted, or the tail cut: a gap in the indexes, a checkpoint larger than the
  log, or a checkpoint the auditor kept;
- two leaves swapped: the stored tree hashes at (or just after) the first of them;
- a checkpoint forged or altered: its signature;
- two checkpoints that are not consistent: one of them differs from the recomputed
  tree, or a consistency proof between them fails.

Leaves after the latest checkpoint are not yet signed: until the next checkpoint (every N
events or T seconds) only the database vouches for them, and a cut there is invisible
unless the auditor holds a later checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection

from gateway.audit import ledger
from gateway.audit.canonical import (
    NotCanonicalizable,
    canonical_bytes,
    reference_canonical_bytes,
)
from gateway.audit.checkpoint import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from gateway.audit.export import FORMAT
from gateway.audit.proofs import ConsistencyProof, InclusionProof
from gateway.audit.tlog import (
    HASH_SIZE,
    ProofError,
    append_leaves,
    consistency_proof,
    frontier,
    leaf_hash,
    root_from_frontier,
    verify_consistency,
    verify_inclusion,
)


@dataclass(frozen=True)
class Problem:
    message: str
    leaf_index: int | None = None
    checkpoint_size: int | None = None


@dataclass(frozen=True)
class Report:
    leaves: int  # leaves replayed
    checkpoints: int  # checkpoints whose signature and root were checked
    size: int  # the log's size as verified (index after the last leaf seen)
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Broken(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Replay:
    """The tree rebuilt leaf by leaf from a starting size and its frontier."""

    def __init__(self, start: int, edge: Sequence[bytes]) -> None:
        self.size = start
        self.edge = list(edge)

    def add(self, h: bytes) -> list[bytes]:
        """Append one leaf hash; return the nodes it completes."""
        completed, self.edge = append_leaves(self.size, self.edge, [h])
        self.size += 1
        return completed[0]

    @property
    def root(self) -> bytes:
        return root_from_frontier(self.edge)


# ---------------------------------------------------------------------------- the database


def verify_log(
    conn: Connection,
    *,
    verifier: NoteVerifier,
    start: int | None = None,
    end: int | None = None,
    trusted: Iterable[str] = (),
) -> Report:
    """Verify leaves [start, end) of the log in the database (all that is kept, by default:
    from the first leaf not archived).

    `trusted` are checkpoint notes the auditor kept from earlier: the log must still
    contain them. The replay runs on to the first checkpoint at or after `end`, so that
    every leaf checked is covered by a signature.
    """
    if start is None:
        start = ledger.pruned_size(conn)
    state = _Counts()
    try:
        _verify_log(conn, verifier, start, end, list(trusted), state)
    except _Broken as broken:
        return Report(state.leaves, state.checkpoints, state.size, broken.problem)
    return Report(state.leaves, state.checkpoints, state.size, None)


@dataclass
class _Counts:
    leaves: int = 0
    checkpoints: int = 0
    size: int = 0


def _verify_log(
    conn: Connection,
    verifier: NoteVerifier,
    start: int,
    end: int | None,
    trusted: list[str],
    counts: _Counts,
) -> None:
    head_size = ledger.size(conn)
    pruned = ledger.pruned_size(conn)
    if start < pruned:
        raise _Broken(
            Problem(
                f"leaves below {pruned} were archived: verify their archive file instead",
                leaf_index=start,
            )
        )
    signed = _signed_checkpoints(conn, verifier, trusted)
    counts.checkpoints = len(signed)
    everything = end is None
    if end is None:
        end = head_size
    stop = min((s for s in signed if s >= end), default=end)
    try:
        edge = frontier(start, ledger.hash_reader(conn))
    except ProofError as exc:
        raise _Broken(Problem(f"cannot start at leaf {start}: {exc}", leaf_index=start)) from exc
    replay = _Replay(start, edge)
    counts.size = start
    last_signed = max((s for s in signed if s <= start), default=0)
    for leaf in ledger.iter_leaves(conn, start=start, end=None if everything else stop):
        i = replay.size
        if leaf.index != i:
            raise _Broken(Problem(f"leaf {i} is missing (next is {leaf.index})", leaf_index=i))
        _check_db_leaf(leaf)
        if replay.add(leaf.leaf_hash) != leaf.nodes:
            raise _Broken(
                Problem(
                    f"leaf {i}: its stored tree hashes do not match the leaves up to it "
                    "(a leaf at or before it was moved, or hashes were rewritten)",
                    leaf_index=i,
                )
            )
        counts.leaves += 1
        counts.size = replay.size
        if replay.size in signed:
            _check_root(signed[replay.size], replay.root, last_signed)
            last_signed = replay.size
    # Every checkpoint signed for a size in the replayed range must have been reached.
    beyond = [s for s in signed if s > replay.size and (everything or s <= stop)]
    if beyond:
        raise _Broken(
            Problem(
                f"the log has {replay.size} leaves but a checkpoint of size {beyond[0]} "
                "was signed: leaves were removed from the end",
                leaf_index=replay.size,
                checkpoint_size=beyond[0],
            )
        )
    if everything and replay.size != head_size:
        raise _Broken(
            Problem(
                f"the last leaf is {head_size - 1}, but the leaves stop at {replay.size - 1}",
                leaf_index=min(head_size, replay.size),
            )
        )
    # Checkpoints outside the replayed range must still extend one another. (Inside it,
    # matching the replayed tree already proves it; checked after the replay so that a
    # tampered leaf is reported as such rather than as a failed proof over its hash.)
    _check_chain(conn, signed)


def _check_db_leaf(leaf: ledger.StoredLeaf) -> None:
    i = leaf.index
    if leaf_hash(leaf.event) != leaf.leaf_hash:
        raise _Broken(Problem(f"leaf {i}: the event does not match its leaf hash", leaf_index=i))
    try:
        canonical = canonical_bytes(orjson.loads(leaf.event))
    except (orjson.JSONDecodeError, NotCanonicalizable) as exc:
        problem = Problem(f"leaf {i}: the event is not an event ({exc})", leaf_index=i)
        raise _Broken(problem) from exc
    if canonical != leaf.event:
        raise _Broken(Problem(f"leaf {i}: the event is not canonical JSON", leaf_index=i))


def _signed_checkpoints(
    conn: Connection, verifier: NoteVerifier, trusted: list[str]
) -> dict[int, Checkpoint]:
    """Every stored and trusted checkpoint, signature checked, by size."""
    signed: dict[int, Checkpoint] = {}
    for stored in ledger.checkpoints(conn):
        try:
            cp = open_checkpoint(stored.note, verifier)
        except NoteError as exc:
            raise _Broken(
                Problem(f"checkpoint {stored.size}: {exc}", checkpoint_size=stored.size)
            ) from exc
        if cp.size != stored.size or cp.root != stored.root:
            raise _Broken(
                Problem(
                    f"checkpoint {stored.size}: its row does not match its signed note",
                    checkpoint_size=stored.size,
                )
            )
        signed[cp.size] = cp
    for note in trusted:
        try:
            cp = open_checkpoint(note, verifier)
        except NoteError as exc:
            raise _Broken(Problem(f"a trusted checkpoint does not verify: {exc}")) from exc
        known = signed.get(cp.size)
        if known is not None and known.root != cp.root:
            raise _Broken(
                Problem(
                    f"two signed checkpoints of size {cp.size} with different roots: "
                    "the log forked",
                    checkpoint_size=cp.size,
                )
            )
        signed[cp.size] = cp
    return dict(sorted(signed.items()))


def _check_chain(conn: Connection, signed: dict[int, Checkpoint]) -> None:
    """Each checkpoint must extend the one before it (RFC 9162 consistency proofs)."""
    read = ledger.hash_reader(conn)
    cps = list(signed.values())
    for old, new in itertools.pairwise(cps):
        try:
            proof = consistency_proof(old.size, new.size, read)
            verify_consistency(
                old_size=old.size,
                new_size=new.size,
                old_root=old.root,
                new_root=new.root,
                proof=proof,
            )
        except ProofError as exc:
            raise _Broken(
                Problem(
                    f"checkpoint {new.size} is not consistent with checkpoint {old.size}: {exc}",
                    leaf_index=old.size,
                    checkpoint_size=new.size,
                )
            ) from exc


def _check_root(cp: Checkpoint, root: bytes, previous: int) -> None:
    if cp.root != root:
        raise _Broken(
            Problem(
                f"checkpoint {cp.size}: its root does not match leaves {previous}..{cp.size - 1}",
                leaf_index=previous,
                checkpoint_size=cp.size,
            )
        )


# ---------------------------------------------------------------------------- an export file


def verify_export(lines: Iterable[bytes], *, verifier: NoteVerifier) -> Report:
    """Verify an export (gateway/audit/export.py) against the log's public key, no database.

    Every event is canonicalised again with the reference RFC 8785 implementation, so the
    check does not depend on the code that wrote the log.
    """
    counts = _Counts()
    try:
        _verify_export(iter(lines), verifier, counts)
    except _Broken as broken:
        return Report(counts.leaves, counts.checkpoints, counts.size, broken.problem)
    return Report(counts.leaves, counts.checkpoints, counts.size, None)


def _verify_export(lines: Iterator[bytes], verifier: NoteVerifier, counts: _Counts) -> None:
    replay = _header(next(lines, b""), verifier)
    counts.size = replay.size
    last_signed = replay.size
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _Broken(Problem(f"line {number}: not JSON")) from exc
        if isinstance(obj, dict) and "checkpoint" in obj:
            cp = _export_checkpoint(obj["checkpoint"], verifier, number)
            if cp.size != replay.size:
                raise _Broken(
                    Problem(
                        f"line {number}: checkpoint {cp.size} after leaf {replay.size - 1}",
                        leaf_index=replay.size,
                        checkpoint_size=cp.size,
                    )
                )
            _check_root(cp, replay.root, last_signed)
            counts.checkpoints += 1
            last_signed = replay.size
            continue
        i = replay.size
        if not isinstance(obj, dict) or not isinstance(obj.get("event"), dict):
            raise _Broken(Problem(f"line {number}: neither a leaf nor a checkpoint", leaf_index=i))
        if obj.get("index") != i:
            raise _Broken(
                Problem(f"line {number}: leaf {i} expected, found {obj.get('index')}", leaf_index=i)
            )
        try:
            data = reference_canonical_bytes(obj["event"])
        except NotCanonicalizable as exc:
            raise _Broken(Problem(f"leaf {i}: {exc}", leaf_index=i)) from exc
        replay.add(leaf_hash(data))
        counts.leaves += 1
        counts.size = replay.size
    if counts.checkpoints == 0:
        raise _Broken(Problem("the export holds no checkpoint: nothing is signed"))
    if replay.size != last_signed:
        raise _Broken(
            Problem(
                f"leaves {last_signed}..{replay.size - 1} are not covered by a checkpoint",
                leaf_index=last_signed,
            )
        )


def _header(line: bytes, verifier: NoteVerifier) -> _Replay:
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _Broken(Problem("line 1: not an export header")) from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Broken(Problem(f"line 1: not a {FORMAT} export"))
    if header.get("origin") != verifier.name:
        origin = header.get("origin")
        raise _Broken(Problem(f"the export is of log {origin!r}, not {verifier.name!r}"))
    start = header.get("start")
    raw = header.get("frontier")
    if type(start) is not int or start < 0 or not isinstance(raw, list):
        raise _Broken(Problem("line 1: bad start or frontier"))
    try:
        edge = [base64.b64decode(h, validate=True) for h in raw]
    except (binascii.Error, TypeError, ValueError) as exc:
        raise _Broken(Problem("line 1: frontier is not base64")) from exc
    if len(edge) != start.bit_count() or any(len(h) != HASH_SIZE for h in edge):
        expected = start.bit_count()
        raise _Broken(Problem(f"line 1: a tree of size {start} has {expected} frontier hashes"))
    return _Replay(start, edge)


def _export_checkpoint(note: object, verifier: NoteVerifier, number: int) -> Checkpoint:
    if not isinstance(note, str):
        raise _Broken(Problem(f"line {number}: checkpoint is not a string"))
    try:
        return open_checkpoint(note, verifier)
    except NoteError as exc:
        raise _Broken(Problem(f"line {number}: {exc}")) from exc


# ---------------------------------------------------------------------------- proof files


def check_inclusion(proof: InclusionProof, event: bytes, *, verifier: NoteVerifier) -> Checkpoint:
    """Check that `event` (canonical bytes) is leaf `proof.index` under a signed checkpoint."""
    cp = open_checkpoint(proof.checkpoint_note, verifier)
    verify_inclusion(
        index=proof.index, size=cp.size, leaf=leaf_hash(event), proof=proof.path, root=cp.root
    )
    return cp


def check_consistency(
    proof: ConsistencyProof, old_note: str, new_note: str, *, verifier: NoteVerifier
) -> tuple[Checkpoint, Checkpoint]:
    """Check that the signed checkpoint `new_note` extends the signed `old_note`."""
    old = open_checkpoint(old_note, verifier)
    new = open_checkpoint(new_note, verifier)
    if (old.size, new.size) != (proof.old_size, proof.new_size):
        raise ProofError(
            f"the proof is from size {proof.old_size} to {proof.new_size}, "
            f"the checkpoints are of sizes {old.size} and {new.size}"
        )
    verify_consistency(
        old_size=old.size, new_size=new.size, old_root=old.root, new_root=new.root, proof=proof.path
    )
    return old, new
