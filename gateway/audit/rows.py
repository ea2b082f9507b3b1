"""The audit rows' insert at driver level: one prepared statement per dialect, executemany.

`conn.execute(insert(table), rows)` rebuilds every row's parameters through SQLAlchemy
Core on each batch (its compiled-statement cache saves the SQL text, not the per-row
`construct_params` work), which showed up as a visible share of the writer's time in
profiles (docs/performance.md). Here the SQL text and each column's bind processor
(e.g. `UTCDateTime`: aware → UTC; SQLite's datetime → text) are looked up once per
dialect, and a batch is one `exec_driver_sql` with a list of tuples: the driver's own
`executemany` (sqlite3's, or asyncpg's on a prepared statement). Same bytes in the
table as the Core insert (tests/audit checks rows read back either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect

from gateway.db.models import AuditEvent

_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
# The columns a decision row sets (gateway/audit/record.py); `detail` is set by admin
# rows and the OAuth endpoints' rows, null for model calls.
COLUMNS = (
    "id",
    "ts",
    "endpoint",
    "subject",
    "client_id",
    "org_id",
    "token_id",
    "tier",
    "model",
    "decision",
    "reasons",
    "status",
    "policy_version",
    "latency_ms",
    "request_hash",
    "upstream_target",
    "upstream_tries",
    "detail",
)

Processor = Callable[[Any], Any]
# SQL text, the row's values in COLUMNS order (one C call per row), and the few columns
# with a bind processor as (position, processor): on SQLite `ts` and `latency_ms`, on
# PostgreSQL `ts`. Walking all 18 columns per row to find them cost ~5 µs a row.
_Prepared = tuple[
    str, Callable[[dict[str, Any]], tuple[Any, ...]], tuple[tuple[int, Processor], ...]
]
_prepared: dict[str, _Prepared] = {}


def _prepare(dialect: Dialect) -> _Prepared:
    key = f"{dialect.name}+{dialect.driver}"
    found = _prepared.get(key)
    if found is None:
        if dialect.paramstyle == "qmark":
            marks = ", ".join("?" for _ in COLUMNS)
        else:  # asyncpg through SQLAlchemy's adapter: numeric_dollar
            marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        sql = f"INSERT INTO {_AUDIT.name} ({', '.join(COLUMNS)}) VALUES ({marks})"
        procs = tuple(
            (i, proc)
            for i, name in enumerate(COLUMNS)
            if (proc := _AUDIT.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            is not None
        )
        found = _prepared[key] = (sql, itemgetter(*COLUMNS), procs)
    return found


def insert_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert decision rows (dicts keyed by `COLUMNS`) in the caller's transaction."""
    sql, values, procs = _prepare(conn.dialect)
    params = []
    for row in rows:
        one = list(values(row))
        for i, proc in procs:
            one[i] = proc(one[i])
        params.append(tuple(one))
    conn.exec_driver_sql(sql, params)
