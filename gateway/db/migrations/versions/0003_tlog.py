"""audit transparency log: leaves with their stored hashes, head, checkpoints; policy archive

Revision ID: 0003_tlog
Revises: 0004_screening
Create Date: 2026-11-26 21:47:35.699283
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.db.models

revision: str = "0003_tlog"
down_revision: str | None = "0004_screening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tlog_checkpoint",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    head = op.create_table(
        "tlog_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_at", gateway.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pruned_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The one row every writer locks to append (gateway/audit/ledger.py).
    op.bulk_insert(head, [{"id": 1, "checkpoint_size": 0, "pruned_size": 0}])
    op.create_table(
        "tlog_leaf",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.Column("event", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index"),
        sa.UniqueConstraint("decision_id", "kind", name="uq_tlog_leaf_decision_kind"),
    )

    op.create_table(
        "policy_archive",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("modules", sa.Text(), nullable=False),
        sa.Column("data_text", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("policy_archive")
    op.drop_table("tlog_leaf")
    op.drop_table("tlog_head")
    op.drop_table("tlog_checkpoint")
