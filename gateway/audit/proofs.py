"""Text forms of the log's proofs, for files an auditor keeps and other tools read.

Inclusion: a C2SP tlog-proof (c2sp.org/tlog-proof@v1): the first line, `index N`, the
audit path one base64 hash per line (sibling nearest the leaf first), a blank line, then
the checkpoint note verbatim. Consistency: our own three-line header and the RFC 9162
proof, one base64 hash per line:

    tac-gateway/tlog-consistency@v1
    old 4
    new 10
    <base64 hash>...
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from gateway.audit.tlog import HASH_SIZE, ProofError

INCLUSION_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_HEADER = "tac-gateway/tlog-consistency@v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class InclusionProof:
    index: int
    path: list[bytes]
    checkpoint_note: str

    def text(self) -> str:
        lines = [INCLUSION_HEADER, f"index {self.index}", *map(_b64, self.path)]
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, text: str) -> InclusionProof:
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or lines[0] != INCLUSION_HEADER:
            raise ProofError(f"not a {INCLUSION_HEADER} proof")
        rest = lines[1:]
        if rest and rest[0].startswith("extra "):
            rest = rest[1:]  # opaque and unauthenticated: we neither write nor trust it
        if not rest or not rest[0].startswith("index "):
            raise ProofError("tlog-proof: missing index line")
        return cls(_decimal(rest[0][6:]), [_hash(line) for line in rest[1:]], note)


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    path: list[bytes]

    def text(self) -> str:
        lines = [CONSISTENCY_HEADER, f"old {self.old_size}", f"new {self.new_size}"]
        return "\n".join([*lines, *map(_b64, self.path)]) + "\n"

    @classmethod
    def parse(cls, text: str) -> ConsistencyProof:
        lines = text.rstrip("\n").split("\n")
        if len(lines) < 3 or lines[0] != CONSISTENCY_HEADER:
            raise ProofError(f"not a {CONSISTENCY_HEADER} proof")
        if not lines[1].startswith("old ") or not lines[2].startswith("new "):
            raise ProofError("consistency proof: missing old/new lines")
        return cls(_decimal(lines[1][4:]), _decimal(lines[2][4:]), [_hash(x) for x in lines[3:]])


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def _hash(line: str) -> bytes:
    try:
        h = base64.b64decode(line, validate=True)
    except binascii.Error as exc:
        raise ProofError("proof hash is not base64") from exc
    if len(h) != HASH_SIZE:
        raise ProofError("proof hash is not 32 bytes")
    return h


def _decimal(text: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise ProofError(f"{text!r} is not a decimal number")
    return int(text)
