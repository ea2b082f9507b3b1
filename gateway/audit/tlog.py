"""Merkle tree math of the audit transparency log (RFC 9162 §2.1), over stored hashes.

Pure functions, no I/O. Like Go's golang.org/x/mod/sumdb/tlog (after Crosby and Wallach),
the log keeps the hash of every complete subtree once, written when its last leaf is
appended: node (level L, index k), the root of leaves [k·2^L, (k+1)·2^L), is stored with
leaf (k+1)·2^L - 1, which completes it. Appending a leaf therefore writes its own hash
and, on average, one node; the root at any tree size, an inclusion proof or a
consistency proof reads O(log n) stored nodes through a `HashReader` (one call).

Proof generation follows the recursive definitions of RFC 9162 (§2.1.3.1 PATH,
§2.1.4.1 SUBPROOF); verification follows the iterative algorithms of §2.1.3.2 and
§2.1.4.2, so the two sides are written differently and check each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = SHA-256()

# A stored node: (level, index); level 0 is a leaf hash.
Node = tuple[int, int]
# Reads the stored hashes of the given nodes, in the same order.
HashReader = Callable[[Sequence[Node]], Sequence[bytes]]


class ProofError(ValueError):
    """A proof, a tree size or a hash that does not check out."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || leaf): the domain prefix keeps a leaf from passing as a node."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def completing_leaf(node: Node) -> int:
    """The leaf whose append completes (and stores) `node`."""
    level, k = node
    return ((k + 1) << level) - 1


def _trailing_ones(n: int) -> int:
    return ((n ^ (n + 1)).bit_length()) - 1


def _split(n: int) -> int:
    """RFC 9162's k for n > 1: the largest power of two smaller than n."""
    return 1 << ((n - 1).bit_length() - 1)


# ---------------------------------------------------------------------------- appending


def append_leaves(
    size: int, frontier: Sequence[bytes], leaf_hashes: Sequence[bytes]
) -> tuple[list[list[bytes]], list[bytes]]:
    """Append leaves to a tree of `size` whose complete-subtree roots are `frontier`.

    Returns, for each new leaf, the nodes it completes (levels 1, 2, ...; often none),
    and the new frontier. Needs no read: every sibling a new leaf completes is in the
    frontier, which is O(log n) hashes.
    """
    if len(frontier) != size.bit_count():
        raise ProofError(f"a tree of size {size} has {size.bit_count()} frontier hashes")
    stack = list(frontier)
    completed: list[list[bytes]] = []
    sha256 = hashlib.sha256  # node_hash inlined: this runs for every leaf the writer appends
    for n, h in enumerate(leaf_hashes, start=size):
        nodes = []
        # Each trailing 1 bit of n closes a subtree: fold it with its left neighbour.
        for _ in range(_trailing_ones(n)):
            h = sha256(b"\x01" + stack.pop() + h).digest()
            nodes.append(h)
        stack.append(h)
        completed.append(nodes)
    return completed, stack


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    """MTH of the tree whose complete-subtree roots are `frontier` (RFC 9162 §2.1.1)."""
    if not frontier:
        return EMPTY_ROOT
    h = frontier[-1]
    for left in reversed(frontier[:-1]):
        h = node_hash(left, h)
    return h


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    _, edge = append_leaves(0, [], leaf_hashes)
    return root_from_frontier(edge)


# ---------------------------------------------------------------------------- reading


def _subtree_nodes(lo: int, hi: int) -> list[Node]:
    """The complete subtrees that make up leaves [lo, hi), left to right."""
    out = []
    while lo < hi:
        k = 1 << ((hi - lo).bit_length() - 1)  # the largest power of two <= hi - lo
        level = k.bit_length() - 1
        if lo % k:
            raise AssertionError(f"range [{lo}, {hi}) is not aligned")  # a bug, not input
        out.append((level, lo >> level))
        lo += k
    return out


def _fold(hashes: Sequence[bytes]) -> bytes:
    return root_from_frontier(hashes)


def _read_ranges(ranges: Sequence[tuple[int, int]], read: HashReader) -> list[bytes]:
    """The MTH of each leaf range, from one read of the stored hashes they need."""
    plans = [_subtree_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for plan in plans for node in plan})
    got = read(wanted)
    if len(got) != len(wanted):
        raise ProofError(f"asked for {len(wanted)} stored hashes, got {len(got)}")
    by_node = dict(zip(wanted, got, strict=True))
    return [_fold([by_node[node] for node in plan]) for plan in plans]


def frontier(size: int, read: HashReader) -> list[bytes]:
    """The complete-subtree roots of the tree of `size`, read from the stored hashes."""
    nodes = _subtree_nodes(0, size)
    got = list(read(nodes))
    if len(got) != len(nodes):
        raise ProofError(f"asked for {len(nodes)} stored hashes, got {len(got)}")
    return got


def tree_hash(size: int, read: HashReader) -> bytes:
    if size < 0:
        raise ProofError("negative tree size")
    if size == 0:
        return EMPTY_ROOT
    return _read_ranges([(0, size)], read)[0]


def _path_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    # RFC 9162 §2.1.3.1: PATH(m, D[lo:hi]), the sibling nearest the leaf first.
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < lo + k:
        return [*_path_ranges(m, lo, lo + k), (lo + k, hi)]
    return [*_path_ranges(m, lo + k, hi), (lo, lo + k)]


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    return _read_ranges(_path_ranges(index, 0, size), read)


def _subproof_ranges(m: int, lo: int, hi: int, whole: bool) -> list[tuple[int, int]]:
    # RFC 9162 §2.1.4.1: SUBPROOF(m, D[lo:hi], b); `whole` is b (m is the whole old tree).
    if m == hi:
        return [] if whole else [(lo, hi)]
    k = _split(hi - lo)
    if m <= lo + k:
        return [*_subproof_ranges(m, lo, lo + k, whole), (lo + k, hi)]
    return [*_subproof_ranges(m, lo + k, hi, False), (lo, lo + k)]


def consistency_proof(old_size: int, new_size: int, read: HashReader) -> list[bytes]:
    """The proof that the tree of `new_size` extends the tree of `old_size`."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    return _read_ranges(_subproof_ranges(old_size, 0, new_size, True), read)


# ---------------------------------------------------------------------------- verifying


def verify_inclusion(
    *, index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless `leaf` is leaf `index` under `root`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError(f"leaf {index} is not included in the tree of size {size}")


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless `new_root` extends `old_root`."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {new_size} cannot extend size {old_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree is empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root or sr != new_root:
        raise ProofError(f"the tree of size {new_size} does not extend the tree of size {old_size}")
