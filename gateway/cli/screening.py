"""`screen` and `screening`: run a misalignment screening of a catalog model, read the
stored reports, and serve a scripted model for demos and tests (docs/screening.md)."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.context import with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc
from gateway.cli.serve import require_free_port
from gateway.policy.bundle import load_bundle
from gateway.screening import store
from gateway.screening.report import ScreeningPolicy, summary
from gateway.settings import Settings

app = typer.Typer()  # `screen MODEL`: a top-level command
group = typer.Typer(help="Screening reports and the scripted model.", no_args_is_help=True)


@app.command()
def screen(
    model: str,
    samples: Annotated[
        int | None, typer.Option(min=1, help="Samples per condition (default: settings).")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who runs it, recorded in the report.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Screen MODEL through its first enabled upstream target and store the report."""
    from gateway.admin.screening import UnknownModel, Unscreenable, screen_and_record

    settings = Settings()
    ran_by = by or f"cli:{getpass.getuser()}"

    async def work(engine: AsyncEngine) -> None:
        # The bar goes to stderr, so that --json output stays one clean document on stdout.
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not sys.stderr.isatty(),
            transient=True,
        ) as bar:
            task = bar.add_task(f"screening {model}", total=None)
            try:
                report, saved = await screen_and_record(
                    engine,
                    settings=settings,
                    policy=ScreeningPolicy.from_policy_data(load_bundle(settings.policy_dir).data),
                    model_name=model,
                    ran_by=ran_by,
                    samples=samples,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            except UnknownModel:
                fail(f"no model named {model!r} in the catalog")
            except Unscreenable as exc:
                fail(str(exc))
        if as_json:
            print(json.dumps(summary(report) | {"report_id": saved.id}))
            return
        _print_report(summary(report) | {"report_id": saved.id})

    with_engine(work)


@group.command("list")
def list_(
    model: Annotated[str | None, typer.Argument(help="Only this model's reports.")] = None,
    limit: Annotated[int, typer.Option("-n", min=1, help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Stored reports, newest first, with each model's current status."""

    async def work(engine: AsyncEngine) -> None:
        now = datetime.now(UTC)
        statuses = await store.statuses(engine, now=now)
        rows = [
            {
                "report_id": r.id,
                "model": r.model_name,
                "created_at": iso_utc(r.created_at),
                "expires_at": iso_utc(r.expires_at),
                "max_ci_high": round(r.max_ci_high, 4),
                "samples": r.samples_per_condition,
                "ran_by": r.ran_by,
                "status": _status_of(statuses.get(r.model_name), r.id),
                "sha256": r.sha256,
            }
            for r in await store.list_reports(engine, model_name=model, limit=limit)
        ]
        columns = ["report_id", "model", "created_at", "max_ci_high", "samples", "status"]
        emit_rows(rows, columns=columns, as_json=as_json)

    with_engine(work)


@group.command()
def show(report_id: str, as_json: JsonFlag = False) -> None:
    """One report's figures (without its samples), and whether its stored hash still holds."""

    async def work(engine: AsyncEngine) -> None:
        row = await store.get_report(engine, report_id=report_id)
        if row is None:
            fail(f"no screening report {report_id!r}")
        body = json.loads(row.body)
        record = {k: v for k, v in body.items() if k != "samples"}
        record |= {"report_id": row.id, "sha256": row.sha256, "hash_ok": store.verify(row)}
        if as_json:
            print(json.dumps(record))
            return
        _print_report(record)

    with_engine(work)


@group.command("scripted-model")
def scripted_model(
    harm_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Probability of harm.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")],
    seed: Annotated[int, typer.Option(help="Seed: same seed, same replies.")] = 0,
    false_positive_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Probability of harm in the controls.")
    ] = 0.0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve a scripted model (OpenAI-compatible) that acts harmfully with probability P."""
    from gateway.demo.scripted_model import run_scripted

    require_free_port(host, port)
    print(
        f"scripted model on http://{host}:{port}/v1 (harm rate {harm_rate}, seed {seed})",
        flush=True,
    )
    run_scripted(
        host=host,
        port=port,
        harm_rate=harm_rate,
        seed=seed,
        false_positive_rate=false_positive_rate,
    )


def _status_of(status: store.ScreeningStatus | None, report_id: str) -> str:
    # Only the latest report of a model speaks for it; older ones are superseded.
    if status is None or status.report_id != report_id:
        return "superseded"
    return status.state


def _print_report(record: dict[str, Any]) -> None:
    head = {
        "model": record["model"],
        "upstream": f"{record['upstream']['url']} ({record['upstream']['model']})",
        "ran_by": record["ran_by"],
        "finished_at": record["finished_at"],
        "expires_at": record["expires_at"],
        "pack": f"{record['pack']['version']} ({record['pack']['sha256'][:16]})",
        "report_id": record["report_id"],
        "sha256": record["sha256"],
    }
    if "hash_ok" in record:
        head["hash_ok"] = record["hash_ok"]
    emit(head, as_json=False)
    rows = [
        {
            **c,
            "rate": "-" if c["rate"] is None else f"{c['rate']:.3f}",
            "95% CI": f"{c['ci_low']:.3f}-{c['ci_high']:.3f}",
            "control": "yes" if c["control"] else "",
        }
        for c in record["conditions"]
    ]
    columns = ["name", "control", "n_valid", "harmful", "invalid", "rate", "95% CI"]
    emit_rows(rows, columns=columns, as_json=False)
    fp = record["controls"]["false_positive_rate"]
    fp_text = "-" if fp is None else f"{fp:.3f}"
    tiers = ", ".join(
        f"{t['tier']} {'pass' if t['passed'] else 'FAIL'}"
        + (f" (<= {t['threshold']})" if t["threshold"] is not None else "")
        for t in record["tiers"]
    )
    print(f"max upper bound {record['max_ci_high']:.3f}; controls' false positives {fp_text}")
    print(f"tiers: {tiers}")
