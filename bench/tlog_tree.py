"""The Merkle tree: pymerkle's in-memory tree against our own few lines (gateway/audit/tlog.py).

Run: .venv/bin/python bench/tlog_tree.py [--n 20000] [--proofs 500]

Both hash with RFC 9162's domain separation and produce the same roots (asserted
below). Measured in µs of process CPU: appending a leaf, the root at the current size,
an inclusion proof and a consistency proof (each verified by the same library's
verifier). Ours reads stored hashes through a callback, here a dict standing in for the
database rows; pymerkle keeps its own store (memory, or its own SQLite file), which is
also why it cannot sit inside the audit writer's transaction on PostgreSQL.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import pymerkle

from gateway.audit import tlog


def per_call_us(fn: Callable[[int], object], n: int) -> float:
    start = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--proofs", type=int, default=500)
    args = parser.parse_args()
    n, k = args.n, args.proofs
    entries = [b"event %d" % i for i in range(n)]
    rng = random.Random(1)
    picks = [(rng.randrange(1, n), rng.randrange(1, n)) for _ in range(k)]

    # ---- ours: frontier append, nodes kept by (level, index) as the ledger stores them
    store: dict[tlog.Node, bytes] = {}
    state: dict[str, object] = {"size": 0, "edge": []}

    def ours_append(i: int) -> None:
        h = tlog.leaf_hash(entries[i])
        completed, state["edge"] = tlog.append_leaves(i, state["edge"], [h])  # type: ignore[arg-type]
        store[(0, i)] = h
        for level, node in enumerate(completed[0], start=1):
            store[(level, i >> level)] = node

    def read(nodes: object) -> list[bytes]:
        return [store[x] for x in nodes]  # type: ignore[attr-defined]

    ours = {"append": per_call_us(ours_append, n)}
    ours["root"] = per_call_us(lambda i: tlog.tree_hash(n - i % 7, read), k)
    roots = {s: tlog.tree_hash(s, read) for p in picks for s in p}
    roots[n] = tlog.tree_hash(n, read)

    def ours_inclusion(i: int) -> None:
        m = picks[i][0] - 1
        proof = tlog.inclusion_proof(m, n, read)
        tlog.verify_inclusion(index=m, size=n, leaf=store[(0, m)], proof=proof, root=roots[n])

    def ours_consistency(i: int) -> None:
        a, b = sorted(picks[i])
        proof = tlog.consistency_proof(a, b, read)
        tlog.verify_consistency(
            old_size=a, new_size=b, old_root=roots[a], new_root=roots[b], proof=proof
        )

    ours["inclusion proof + verify"] = per_call_us(ours_inclusion, k)
    ours["consistency proof + verify"] = per_call_us(ours_consistency, k)

    # ---- pymerkle
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    theirs = {"append": per_call_us(lambda i: tree.append_entry(entries[i]), n)}
    theirs["root"] = per_call_us(lambda i: tree.get_root(n - i % 7), k)
    assert tree.get_root(n) == roots[n]

    def their_inclusion(i: int) -> None:
        m = picks[i][0]  # pymerkle counts leaves from 1
        proof = tree.prove_inclusion(m, n)
        pymerkle.verify_inclusion(tree.get_leaf(m), roots[n], proof)

    def their_consistency(i: int) -> None:
        a, b = sorted(picks[i])
        proof = tree.prove_consistency(a, b)
        pymerkle.verify_consistency(roots[a], roots[b], proof)

    theirs["inclusion proof + verify"] = per_call_us(their_inclusion, k)
    theirs["consistency proof + verify"] = per_call_us(their_consistency, k)

    print(f"tree of {n} leaves, {k} proofs\n")
    print("| operation | ours µs | pymerkle µs |\n|---|---:|---:|")
    for name in ours:
        print(f"| {name} | {ours[name]:.1f} | {theirs[name]:.1f} |")


if __name__ == "__main__":
    main()
