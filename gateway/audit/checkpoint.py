"""Signed checkpoints of the audit log: C2SP tlog-checkpoint bodies in C2SP signed notes.

A checkpoint commits to the tree head at one size:

    <origin>\\n<tree size>\\n<base64 root hash>\\n

signed with Ed25519 as a signed note: the body, a blank line, then one line per
signature, "— <key name> base64(key ID || signature)". The key ID is the first four bytes
of SHA-256(key name || 0x0A || 0x01 || public key), and the public key is published as
a verifier key "<name>+<key ID hex>+base64(0x01 || public key)", the form Go's
golang.org/x/mod/sumdb/note reads. The key name is the origin.

The signing key comes from settings: a base64 32-byte seed (environment), or a PEM file
created 0600 on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.tlog import HASH_SIZE

ALG_ED25519 = 0x01
_EM_DASH = "\u2014"
_MAX_SIGNATURES = 16  # the note spec: verifiers must accept at least 16
# Key names: non-empty, no Unicode space, no plus.
_NAME = re.compile(r"[^\s+]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A note or checkpoint that is malformed, unsigned by the key, or badly signed."""


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NoteError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")
    return name


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, _raw_public(self.public_key))

    @property
    def vkey(self) -> str:
        """The published verifier key: <name>+<key ID hex>+base64(0x01 || public key)."""
        raw = bytes([ALG_ED25519]) + _raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        name, _, rest = vkey.strip().partition("+")
        hash_hex, _, key_b64 = rest.partition("+")
        try:
            raw = base64.b64decode(key_b64, validate=True)
            claimed = bytes.fromhex(hash_hex)
        except (binascii.Error, ValueError) as exc:
            raise NoteError("malformed verifier key") from exc
        if len(hash_hex) != 8 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("malformed verifier key (expected an Ed25519 key)")
        verifier = cls(_check_name(name), Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_id != claimed:
            raise NoteError("verifier key hash does not match its name and key")
        return verifier


@dataclass(frozen=True)
class NoteSigner:
    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.private_key.public_key())

    def sign(self, text: str) -> str:
        """The signed note: `text`, a blank line, and this key's signature line."""
        _check_text(text)
        sig = self.private_key.sign(text.encode())
        line = base64.b64encode(self.verifier.key_id + sig).decode()
        return f"{text}\n{_EM_DASH} {self.name} {line}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("note text holds a control character")


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The text of `note` if `verifier`'s key signed it; NoteError otherwise.

    Per the note spec: signatures by other keys are ignored, a signature by this key
    that fails rejects the whole note, and no signature by this key rejects it too.
    """
    text, sep, sigs = note.rpartition("\n\n")
    if not sep:
        raise NoteError("not a signed note: no blank line before the signatures")
    text += "\n"
    _check_text(text)
    lines = sigs.split("\n")
    if lines[-1] != "" or len(lines) < 2:
        raise NoteError("signature lines must end with a newline")
    lines = lines[:-1]
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError(f"more than {_MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        name, sig = _parse_signature_line(line)
        if name != verifier.name or sig[:4] != verifier.key_id:
            continue
        try:
            verifier.public_key.verify(sig[4:], text.encode())
        except InvalidSignature as exc:
            raise NoteError(f"invalid signature by {verifier.name}") from exc
        verified = True
    if not verified:
        raise NoteError(f"note is not signed by {verifier.name}+{verifier.key_id.hex()}")
    return text


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    prefix = _EM_DASH + " "
    if not line.startswith(prefix):
        raise NoteError("malformed signature line")
    name, space, b64 = line[len(prefix) :].rpartition(" ")
    try:
        sig = base64.b64decode(b64, validate=True)
    except binascii.Error as exc:
        raise NoteError("malformed signature line") from exc
    if not space or not _NAME.fullmatch(name) or len(sig) < 5:
        raise NoteError("malformed signature line")
    return name, sig


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is at least three non-empty lines")
        origin, size, root_b64 = lines[:3]
        if not _DECIMAL.fullmatch(size):
            raise NoteError(f"checkpoint tree size {size!r} is not a decimal")
        try:
            root = base64.b64decode(root_b64, validate=True)
        except binascii.Error as exc:
            raise NoteError("checkpoint root hash is not base64") from exc
        if len(root) != HASH_SIZE:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), root)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    return signer.sign(checkpoint.body())


def open_checkpoint(note: str, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """The checkpoint in `note`, once its signature and origin are checked."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {expected!r}")
    return checkpoint


def load_signer(*, origin: str, key_file: Path, seed_b64: str = "") -> NoteSigner:
    """The log's signer: from a base64 seed if given, else from (or created at) key_file."""
    if seed_b64:
        try:
            seed = base64.b64decode(seed_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError("audit log key seed is not base64") from exc
        if len(seed) != 32:
            raise ValueError("audit log key seed must be 32 bytes (base64)")
        return NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(seed))
    return NoteSigner(origin, _load_or_create(key_file))


def existing_verifier(*, origin: str, key_file: Path, seed_b64: str = "") -> NoteVerifier:
    """The log's verifier from the configured key, never creating one (for the CLI)."""
    if not seed_b64 and not key_file.exists():
        raise FileNotFoundError(f"no audit log key at {key_file}: pass the log's --vkey")
    return load_signer(origin=origin, key_file=key_file, seed_b64=seed_b64).verifier


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return loaded
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: whoever reads it can sign checkpoints for the log.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process sharing the path made it first: use that one, never two keys.
        # (Written whole before anyone could open it? Not guaranteed: retry once shortly.)
        time.sleep(0.2)
        return _load_or_create(path)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key
