"""`tac-gateway`: run, migrate, and administer organizations, clients, models, signing keys
and the audit log.

The root Typer app; each verb group is a sub-app in its own module. `main` is the
console script: it turns operator errors into one line on stderr (see `output.run`).
"""

from __future__ import annotations

import typer

from gateway.cli import audit, client, grant, keys, model, org, screening, serve, usage
from gateway.cli.output import run

app = typer.Typer(
    name="tac-gateway",
    help="TAC Gateway: tiered trusted access to specialized models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(serve.app)  # serve, migrate, demo: top-level commands
app.add_typer(org.app, name="org")
app.add_typer(grant.app, name="grant")
app.add_typer(client.app, name="client")
app.add_typer(model.app, name="model")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(usage.app, name="usage")
app.add_typer(screening.app)  # screen MODEL: top-level
app.add_typer(screening.group, name="screening")


def main(argv: list[str] | None = None) -> None:
    run(app, argv)
