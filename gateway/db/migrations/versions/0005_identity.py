"""identity: signing keys in the database, revoked tokens, federated issuer bindings,
client JWKS for private_key_jwt

Revision ID: 0005_identity
Revises: 0003_tlog
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_identity"
down_revision: str | None = "0003_tlog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_s = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "signingkey",
        sa.Column("kid", _s(length=64), nullable=False),
        sa.Column("alg", _s(length=10), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retire_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "revokedtoken",
        sa.Column("jti", _s(length=64), nullable=False),
        sa.Column("client_id", _s(length=64), nullable=False),
        sa.Column("exp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_table(
        "orgissuer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", _s(length=64), nullable=False),
        sa.Column("issuer", _s(length=500), nullable=False),
        sa.Column("org_claim", _s(length=200), nullable=True),
        sa.Column("subject", _s(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("orgissuer", schema=None) as batch_op:
        batch_op.create_index("ix_orgissuer_issuer", ["issuer"], unique=False)
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jwks", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.drop_column("jwks")
    with op.batch_alter_table("orgissuer", schema=None) as batch_op:
        batch_op.drop_index("ix_orgissuer_issuer")
    op.drop_table("orgissuer")
    op.drop_table("revokedtoken")
    op.drop_table("signingkey")
