"""routing: upstream targets per model; audit rows name the target and the tries

Each model's single upstream (modelentry.upstream_url / upstream_model) becomes its first
upstream target, named after the URL's host and port, weight 1, no credential of its own
(the global upstream key, as before). The downgrade puts each model's first target back.

Revision ID: 0006_routing
Revises: 0002_trust
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_routing"
down_revision: str | None = "0002_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def _target_name(url: str) -> str:
    # Frozen copy of the rule in gateway/routing/targets.py: a migration must not change
    # when the application code does.
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "upstream", parts.port
    except ValueError:
        return "upstream"
    return (f"{host}:{port}" if port else host)[:100]


def upgrade() -> None:
    # Read the old upstreams first, and change modelentry before any table references it:
    # SQLite's batch mode rebuilds the table, which its foreign-key check would refuse.
    conn = op.get_bind()
    # Typed columns, so that SQLite's stored text comes back as a datetime.
    entry = sa.table(
        "modelentry",
        sa.column("name", sa.String),
        sa.column("upstream_url", sa.String),
        sa.column("upstream_model", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = conn.execute(sa.select(entry)).all()
    with op.batch_alter_table("modelentry", schema=None) as batch_op:
        batch_op.drop_column("upstream_url")
        batch_op.drop_column("upstream_model")
    target = op.create_table(
        "upstreamtarget",
        sa.Column("model", _S(length=200), nullable=False),
        sa.Column("name", _S(length=100), nullable=False),
        sa.Column("url", _S(length=500), nullable=False),
        sa.Column("upstream_model", _S(length=200), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("credential", _S(length=500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["modelentry.name"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "name", name="uq_upstreamtarget_model_name"),
    )
    if rows:
        op.bulk_insert(
            target,
            [
                {
                    "model": r.name,
                    "name": _target_name(r.upstream_url),
                    "url": r.upstream_url,
                    "upstream_model": r.upstream_model,
                    "weight": 1,
                    "credential": None,
                    "enabled": True,
                    "headers": "{}",
                    "created_at": r.created_at or datetime.now(UTC),
                }
                for r in rows
            ],
        )
    with op.batch_alter_table("auditevent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_target", _S(length=100), nullable=True))
        batch_op.add_column(sa.Column("upstream_tries", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auditevent", schema=None) as batch_op:
        batch_op.drop_column("upstream_tries")
        batch_op.drop_column("upstream_target")
    conn = op.get_bind()
    # Each model's first target (lowest id); only one upstream per model before this.
    first: dict[str, tuple[str, str]] = {}
    for r in conn.execute(
        sa.text("SELECT model, url, upstream_model FROM upstreamtarget ORDER BY model, id")
    ).all():
        first.setdefault(r.model, (r.url, r.upstream_model))
    op.drop_table("upstreamtarget")  # before modelentry is rebuilt (see upgrade)
    # Nullable while they are filled in, then required again as before.
    with op.batch_alter_table("modelentry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_url", _S(length=500), nullable=True))
        batch_op.add_column(sa.Column("upstream_model", _S(length=200), nullable=True))
    for model, (url, upstream_model) in first.items():
        conn.execute(
            sa.text(
                "UPDATE modelentry SET upstream_url = :url, upstream_model = :um WHERE name = :m"
            ),
            {"url": url, "um": upstream_model, "m": model},
        )
    # A model without any target gets an empty URL (every call to it failed anyway).
    conn.execute(
        sa.text(
            "UPDATE modelentry SET upstream_url = '', upstream_model = name "
            "WHERE upstream_url IS NULL"
        )
    )
    with op.batch_alter_table("modelentry", schema=None) as batch_op:
        batch_op.alter_column("upstream_url", existing_type=_S(length=500), nullable=False)
        batch_op.alter_column("upstream_model", existing_type=_S(length=200), nullable=False)
