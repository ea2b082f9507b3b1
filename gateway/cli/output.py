"""How the CLI speaks: Rich tables for people, `--json` for scripts, one-line errors.

Every command prints through `emit`/`emit_rows`, and every failure an operator can cause
leaves through `run` as `error: ...` on stderr with exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from gateway.errors import GatewayError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts, not a table.")]

NOT_MIGRATED = "the database is not migrated; run `tac-gateway migrate`"


class CliError(Exception):
    """An operator's mistake or an unmet precondition: shown as one line, exit status 1."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def _console() -> Console:
    # Piped output (scripts, `grep`, tests) must not wrap rows at 80 columns.
    interactive = sys.stdout.isatty()
    return Console(width=None if interactive else 10_000, highlight=False, soft_wrap=True)


def emit(record: dict[str, Any], *, as_json: bool, title: str | None = None) -> None:
    """One object: as a JSON object, or as a two-column table of its fields."""
    if as_json:
        print(json.dumps(record, default=str))
        return
    table = Table(title=title, show_header=False, box=None, title_justify="left", pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        table.add_row(key, _cell(value))
    _console().print(table)


def emit_rows(rows: Sequence[dict[str, Any]], *, columns: Sequence[str], as_json: bool) -> None:
    """Many objects: a JSON array, or a table with one row each (nothing when empty)."""
    if as_json:
        print(json.dumps(list(rows), default=str))
        return
    if not rows:
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    _console().print(table)


def iso_utc(ts: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the millisecond: one reading wherever the operator is."""
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # naive values are UTC
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    return str(value)


def run(app: typer.Typer, argv: Sequence[str] | None = None) -> None:
    """Run the CLI; translate the failures an operator can cause into one line each."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="tac-gateway")
    except CliError as exc:
        _exit(str(exc))
    except GatewayError as exc:
        # The admin operations' own refusals: the same message the API gives, and its code.
        _exit(f"{exc.message} ({exc.reason.value})")
    except ValidationError as exc:
        # Every bad setting at once, one per line, so one restart fixes them all.
        lines = [
            f"  {'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        _exit("invalid settings:\n" + "\n".join(lines))
    except DBAPIError as exc:
        _exit(_database_error(exc))
    except FileNotFoundError as exc:  # e.g. TACGW_CONFIG_FILE naming a missing file
        _exit(str(exc))
    except (ConnectionError, TimeoutError, socket.gaierror) as exc:
        # asyncpg raises these unwrapped when the server cannot be reached at all.
        _exit(f"cannot reach the database: {exc}")
    except OSError as exc:  # e.g. a file the settings name that cannot be written
        _exit(str(exc))


def _database_error(exc: DBAPIError) -> str:
    text = str(exc.orig)
    # SQLite says "no such table"; PostgreSQL's SQLSTATE 42P01 is undefined_table.
    if "no such table" in text or getattr(exc.orig, "sqlstate", None) == "42P01":
        return NOT_MIGRATED
    return "database error: " + (text.strip().splitlines() or [type(exc.orig).__name__])[0]


def _exit(message: str) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(1)
