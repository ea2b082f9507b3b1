"""The ordered trust tiers; names are configurable, order is what matters."""

from __future__ import annotations

from collections.abc import Sequence


class Tiers:
    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError("tiers must be a non-empty list of distinct names")
        self.names = tuple(names)
        self._rank = {name: i for i, name in enumerate(names)}

    @property
    def lowest(self) -> str:
        return self.names[0]

    def rank(self, name: str) -> int:
        """Rank of a tier; an unknown name ranks below everything (fail closed)."""
        return self._rank.get(name, -1)

    def lower(self, a: str, b: str) -> str:
        return a if self.rank(a) <= self.rank(b) else b

    def __contains__(self, name: object) -> bool:
        return name in self._rank
