"""Per-request reads at driver level: a Core select compiled once per dialect.

`conn.execute(select)` finds the compiled SQL in SQLAlchemy's cache, but still builds
an execution context, runs `construct_params` and wraps every result row on each call:
for the trust read, the one query every `/v1` request makes, that was ~7% of the
gateway's CPU at c16 (docs/performance.md). A `PreparedRead` keeps, per dialect, what
those steps produce that does not change between calls — the SQL text, the positional
order of its parameters, each parameter's bind processor (`UTCDateTime`: aware → UTC;
SQLite: datetime → text) and each column's result processor (SQLite: text → datetime,
then `UTCDateTime`: naive → UTC; 0/1 → bool) — so that a read is the driver's own
execute and fetch (`RequestDb.fetch`) plus those few conversions. Rows come back as
tuples with the values Core's rows would hold (tests/trust/test_driver_read.py, on SQLite
and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Select

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """One read in one dialect: the SQL text and its conversions."""

    sql: str
    names: tuple[str, ...]  # the parameters in positional order (a name may repeat: qmark)
    binds: tuple[Processor | None, ...]  # aligned with `names`
    results: tuple[tuple[int, Processor], ...]  # only the columns that need converting

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            params[name] if proc is None else proc(params[name])
            for name, proc in zip(self.names, self.binds, strict=True)
        )

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        if not self.results:
            return [tuple(row) for row in raw]
        out = []
        for row in raw:
            values = list(row)
            for i, proc in self.results:
                values[i] = proc(values[i])
            out.append(tuple(values))
        return out


class PreparedRead:
    """A select whose compiled form, per dialect, is built on first use and then kept."""

    def __init__(self, query: Select[Any]) -> None:
        self.query = query  # the Core form, still usable with `RequestDb.read`
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _compile(self.query, dialect)
        return found


def _compile(query: Select[Any], dialect: Dialect) -> Compiled:
    compiled = query.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    if dialect.paramstyle not in ("qmark", "numeric_dollar"):
        # The two drivers the request path reads through (sqlite3, asyncpg) are positional.
        raise ValueError(f"no positional form for {dialect.name}+{dialect.driver}")
    binds = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    results = tuple(
        (i, proc)
        for i, column in enumerate(query.selected_columns)
        if (proc := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
    )
    return Compiled(sql=compiled.string, names=names, binds=binds, results=results)
