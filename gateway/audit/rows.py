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

Processor = Callable[[Any], Any] | None
_prepared: dict[str, tuple[str, tuple[Processor, ...]]] = {}


def _prepare(dialect: Dialect) -> tuple[str, tuple[Processor, ...]]:
    key = f"{dialect.name}+{dialect.driver}"
    found = _prepared.get(key)
    if found is None:
        if dialect.paramstyle == "qmark":
            marks = ", ".join("?" for _ in COLUMNS)
        else:  # asyncpg through SQLAlchemy's adapter: numeric_dollar
            marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        sql = f"INSERT INTO {_AUDIT.name} ({', '.join(COLUMNS)}) VALUES ({marks})"
        procs = tuple(
            _AUDIT.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in COLUMNS
        )
        found = _prepared[key] = (sql, procs)
    return found


def insert_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert decision rows (dicts keyed by `COLUMNS`) in the caller's transaction."""
    sql, procs = _prepare(conn.dialect)
    params = [
        tuple(
            row[name] if proc is None else proc(row[name])
            for name, proc in zip(COLUMNS, procs, strict=True)
        )
        for row in rows
    ]
    conn.exec_driver_sql(sql, params)
