"""The Merkle tree math agrees with RFC 9162's definitions, CT's test vectors and pymerkle."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pymerkle
import pytest

from gateway.audit import tlog

# RFC 6962 test data (the Certificate Transparency reference tests): 8 leaves and the
# root of each prefix of them.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
N = 40


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1, literally: the reference the stored-hash code is checked against."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return tlog.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def store_of(leaves: Sequence[bytes]) -> dict[tlog.Node, bytes]:
    """Every stored node, keyed by (level, index), as appending wrote them."""
    completed, _ = tlog.append_leaves(0, [], leaves)
    store = {}
    for n, (h, nodes) in enumerate(zip(leaves, completed, strict=True)):
        store[(0, n)] = h
        for level, node in enumerate(nodes, start=1):
            # The node a leaf completes at `level` is the one ending at that leaf.
            store[(level, n >> level)] = node
            assert tlog.completing_leaf((level, n >> level)) == n
    return store


def build(n: int) -> tuple[list[bytes], tlog.HashReader]:
    leaves = [tlog.leaf_hash(b"leaf %d" % i) for i in range(n)]
    store = store_of(leaves)
    return leaves, lambda nodes: [store[node] for node in nodes]


def test_ct_vectors() -> None:
    store = store_of([tlog.leaf_hash(x) for x in CT_LEAVES])
    for n, want in enumerate(CT_ROOTS, start=1):
        assert tlog.tree_hash(n, lambda nodes: [store[i] for i in nodes]).hex() == want


def test_every_complete_subtree_is_stored_once_with_its_last_leaf() -> None:
    leaves = [tlog.leaf_hash(b"%d" % i) for i in range(64)]
    store = store_of(leaves)
    # 64 leaves: 64 + 32 + ... + 1 complete subtrees, each the MTH of its leaves.
    assert len(store) == 127
    for (level, k), h in store.items():
        assert h == mth(leaves[k << level : (k + 1) << level])


def test_roots_match_the_definition_and_pymerkle() -> None:
    leaves, read = build(N)
    reference = pymerkle.InmemoryTree(algorithm="sha256")
    for n in range(N + 1):
        assert tlog.tree_hash(n, read) == mth(leaves[:n])
        assert tlog.root_from_frontier(tlog.frontier(n, read)) == mth(leaves[:n])
        if n:
            reference.append_entry(b"leaf %d" % (n - 1))
            assert reference.get_root() == mth(leaves[:n])


def test_appending_in_batches_equals_appending_at_once() -> None:
    leaves, _ = build(N)
    at_once, edge = tlog.append_leaves(0, [], leaves)
    size, front, pieces = 0, [], []
    for cut in (1, 2, 3, 8, 13, 31, N):
        stored, front = tlog.append_leaves(size, front, leaves[size:cut])
        pieces += stored
        size = cut
    assert pieces == at_once and front == edge


def test_every_inclusion_proof_verifies_and_no_wrong_one_does() -> None:
    leaves, read = build(N)
    for n in range(1, N + 1):
        root = mth(leaves[:n])
        for m in range(n):
            proof = tlog.inclusion_proof(m, n, read)
            tlog.verify_inclusion(index=m, size=n, leaf=leaves[m], proof=proof, root=root)
            wrong = [
                {"leaf": leaves[(m + 1) % n]} if n > 1 else {"root": b"\x01" * 32},
                {"index": (m + 1) % n} if n > 1 else {"size": 2},
                {"proof": [*proof, root]},
                {"root": mth(leaves[: n - 1]) if n > 1 else b"\x00" * 32},
            ]
            if proof:
                wrong.append({"proof": proof[:-1]})
            for change in wrong:
                args = {"index": m, "size": n, "leaf": leaves[m], "proof": proof, "root": root}
                with pytest.raises(tlog.ProofError):
                    tlog.verify_inclusion(**(args | change))


def test_every_consistency_proof_verifies_and_no_wrong_one_does() -> None:
    leaves, read = build(N)
    for new in range(1, N + 1):
        for old in range(0, new + 1):
            proof = tlog.consistency_proof(old, new, read)
            args = {
                "old_size": old,
                "new_size": new,
                "old_root": mth(leaves[:old]),
                "new_root": mth(leaves[:new]),
                "proof": proof,
            }
            tlog.verify_consistency(**args)
            if 0 < old < new:
                forked = [tlog.leaf_hash(b"fork"), *leaves[1:old]]
                for change in (
                    {"old_root": mth(forked)},
                    {"new_root": mth([*leaves[: new - 1], tlog.leaf_hash(b"x")])},
                    {"proof": proof[:-1]},
                    {"proof": [*proof, proof[0]]},
                    {"proof": [b"\x00" * 32, *proof[1:]]},
                ):
                    with pytest.raises(tlog.ProofError):
                        tlog.verify_consistency(**(args | change))


def test_proofs_read_logarithmically_many_hashes() -> None:
    """O(log n) stored hashes per proof, in one read: what keeps proofs cheap at any size."""
    calls: list[int] = []
    _, read = build(1000)

    def counting(nodes: Sequence[tlog.Node]) -> Sequence[bytes]:
        calls.append(len(nodes))
        return read(nodes)

    tlog.inclusion_proof(517, 1000, counting)
    tlog.consistency_proof(333, 1000, counting)
    tlog.tree_hash(999, counting)
    assert len(calls) == 3 and max(calls) <= 2 * 10


def test_bad_sizes_are_refused() -> None:
    _, read = build(4)
    for call in (
        lambda: tlog.inclusion_proof(4, 4, read),
        lambda: tlog.inclusion_proof(-1, 4, read),
        lambda: tlog.consistency_proof(5, 4, read),
        lambda: tlog.append_leaves(3, [], []),
    ):
        with pytest.raises(tlog.ProofError):
            call()
