"""Signed notes and checkpoints in the C2SP formats, as Go's sumdb/note reads them."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoint import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    load_signer,
    open_checkpoint,
    open_note,
    sign_checkpoint,
)

# The worked example of golang.org/x/mod/sumdb/note's documentation: its signer key
# (PRIVATE+KEY+PeterNeumann+c74f20a3+<0x01 || seed>), verifier key and signed note.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> NoteSigner:
    return load_signer(
        origin="PeterNeumann",
        key_file=Path("/nonexistent"),
        seed_b64=base64.b64encode(GO_SEED).decode(),
    )


def test_the_go_documentation_example_signs_and_verifies_identically() -> None:
    signer = go_signer()
    assert signer.verifier.vkey == GO_VKEY
    assert signer.sign(GO_TEXT) == GO_NOTE
    assert open_note(GO_NOTE, NoteVerifier.from_vkey(GO_VKEY)) == GO_TEXT


def test_checkpoint_round_trip(signer: NoteSigner) -> None:
    cp = Checkpoint(signer.name, 20852163, bytes(range(32)))
    note = sign_checkpoint(cp, signer)
    assert note.startswith(
        f"{signer.name}\n20852163\n{base64.b64encode(bytes(range(32))).decode()}\n\n— "
    )
    verifier = NoteVerifier.from_vkey(signer.verifier.vkey)
    assert open_checkpoint(note, verifier) == cp


def test_other_signatures_are_ignored_but_a_bad_one_by_our_key_rejects(signer: NoteSigner) -> None:
    note = sign_checkpoint(Checkpoint(signer.name, 3, b"\x07" * 32), signer)
    witness = NoteSigner("witness.example", Ed25519PrivateKey.generate())
    cosigned = note + witness.sign(Checkpoint(signer.name, 3, b"\x07" * 32).body()).split("\n\n")[1]
    assert open_checkpoint(cosigned, signer.verifier).size == 3
    # Same name, same key ID, wrong signature: the whole note is rejected.
    text, _, line = note.rpartition("\n\n")
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[10] ^= 1
    forged = f"{text}\n\n— {signer.name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteError, match="invalid signature"):
        open_checkpoint(forged, signer.verifier)


def test_a_note_signed_only_by_another_key_is_rejected(signer: NoteSigner) -> None:
    impostor = NoteSigner(signer.name, Ed25519PrivateKey.generate())  # same name, other key
    note = sign_checkpoint(Checkpoint(signer.name, 9, b"\x01" * 32), impostor)
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(note, signer.verifier)


@pytest.mark.parametrize(
    "edit",
    [
        lambda n: n.replace("\n5\n", "\n6\n", 1),  # size changed after signing
        lambda n: n.replace("\n\n", "\n", 1),  # no blank line
        lambda n: n.rstrip("\n"),  # signature line without newline
        lambda n: n.replace("— ", "- ", 1),  # not an em dash
        lambda n: "x\x01" + n,  # a control character
    ],
)
def test_malformed_or_altered_notes_are_rejected(signer: NoteSigner, edit: object) -> None:
    note = sign_checkpoint(Checkpoint(signer.name, 5, b"\x02" * 32), signer)
    with pytest.raises(NoteError):
        open_checkpoint(edit(note), signer.verifier)  # type: ignore[operator]


def test_checkpoint_body_rules(signer: NoteSigner) -> None:
    for body in ("o\n05\nAA==\n", "o\n5\n", "o\n-1\n" + "A" * 44 + "\n", "o\n1\nAAAA\n"):
        with pytest.raises(NoteError):
            Checkpoint.parse(body)
    note = sign_checkpoint(Checkpoint("other.example/log", 1, b"\x00" * 32), signer)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, signer.verifier)


def test_vkey_parsing_checks_the_key_hash() -> None:
    name, hash_hex, key = GO_VKEY.split("+")
    for bad in (
        f"{name}+00000000+{key}",
        f"Other+{hash_hex}+{key}",
        f"{name}+{hash_hex}+AAAA",
        "x",
    ):
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(bad)
    with pytest.raises(NoteError):
        NoteSigner("has space", Ed25519PrivateKey.generate())


def test_key_file_is_created_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-log.pem"
    first = load_signer(origin="a.example/log", key_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_signer(origin="a.example/log", key_file=path)
    assert again.verifier.vkey == first.verifier.vkey


def test_wrong_keys_are_refused(tmp_path: Path) -> None:
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.pem").write_bytes(ec)
    with pytest.raises(ValueError, match="Ed25519"):
        load_signer(origin="a", key_file=tmp_path / "ec.pem")
    for seed in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="seed"):
            load_signer(origin="a", key_file=tmp_path / "unused.pem", seed_b64=seed)
