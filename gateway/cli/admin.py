"""`admin`: local console accounts (argon2 password hashes), for sites without an IdP.

tac-gateway admin create alice --role admin      asks for the password twice
tac-gateway admin create bob --role auditor --password-stdin < secret.txt
tac-gateway admin list | passwd NAME | disable NAME
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.context import with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc
from gateway.console import accounts
from gateway.db.models import utcnow

app = typer.Typer(help="Local console accounts (admins and auditors).", no_args_is_help=True)

Role = Annotated[str, typer.Option("--role", help="admin or auditor (the admin policy's roles).")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True)
    if typer.prompt("Repeat it", hide_input=True) != first:
        fail("the two passwords differ")
    return str(first)


@app.command()
def create(
    name: str,
    role: Role = "admin",
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an account; it signs in at /console/signin."""
    password = _password(password_stdin)

    async def work(engine: AsyncEngine) -> None:
        try:
            await accounts.create_account(engine, name=name, password=password, role=role)
        except accounts.AccountError as exc:
            fail(str(exc))
        emit({"name": name, "role": role}, as_json=as_json, title="Account created.")

    with_engine(work)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """Every local account (never a hash)."""
    rows = with_engine(accounts.list_accounts)
    shown = [
        {
            "name": r["name"],
            "role": r["role"],
            "created_at": iso_utc(r["created_at"]),  # type: ignore[arg-type]
            "disabled_at": iso_utc(r["disabled_at"]) if r["disabled_at"] else None,  # type: ignore[arg-type]
        }
        for r in rows
    ]
    emit_rows(shown, columns=["name", "role", "created_at", "disabled_at"], as_json=as_json)


@app.command()
def passwd(name: str, password_stdin: PasswordStdin = False) -> None:
    """Set a new password (sessions already open stay open until they expire)."""
    password = _password(password_stdin)

    async def work(engine: AsyncEngine) -> None:
        try:
            found = await accounts.set_password(engine, name=name, password=password)
        except accounts.AccountError as exc:
            fail(str(exc))
        if not found:
            fail(f"no account named {name!r}")

    with_engine(work)


@app.command()
def disable(name: str) -> None:
    """Refuse this account's next sign-in."""

    async def work(engine: AsyncEngine) -> None:
        if not await accounts.disable_account(engine, name=name, at=utcnow()):
            fail(f"no account named {name!r}")

    with_engine(work)
