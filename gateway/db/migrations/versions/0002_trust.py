"""trust: organization lifecycle and domain, memberships, domain proof, grant reasons

Revision ID: 0002_trust
Revises: 0001

Existing organizations keep their meaning under the new lifecycle: `active` becomes
`verified` and `pending` becomes `applied` (`suspended` is unchanged). Columns are only
added (never rebuilt) so that SQLite, where organization is referenced by foreign keys,
upgrades in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002_trust"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("organization") as batch:
        batch.add_column(sa.Column("domain", _STR(length=253), nullable=True))
        batch.add_column(sa.Column("sector", _STR(length=60), nullable=True))
        batch.add_column(sa.Column("country", _STR(length=2), nullable=True))
        batch.add_column(sa.Column("evidence", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("applied_by", _STR(length=200), nullable=True))
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_organization_domain", ["domain"], unique=True)
    op.execute("UPDATE organization SET status = 'verified' WHERE status = 'active'")
    op.execute("UPDATE organization SET status = 'applied' WHERE status = 'pending'")

    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("roles", _STR(length=200), nullable=False, server_default=""))

    with op.batch_alter_table("trustgrant") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("revoke_reason", sa.Text(), nullable=False, server_default=""))

    with op.batch_alter_table("auditevent") as batch:
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))

    op.create_table(
        "membership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", _STR(length=64), nullable=False),
        sa.Column("subject", _STR(length=200), nullable=False),
        sa.Column("role", _STR(length=20), nullable=False),
        sa.Column("added_by", _STR(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "subject", name="uq_membership_org_subject"),
    )
    with op.batch_alter_table("membership") as batch:
        batch.create_index("ix_membership_subject", ["subject"], unique=False)

    op.create_table(
        "verificationchallenge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", _STR(length=64), nullable=False),
        sa.Column("method", _STR(length=10), nullable=False),
        sa.Column("token", _STR(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", _STR(length=10), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("verificationchallenge") as batch:
        batch.create_index("ix_verificationchallenge_org_id", ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verificationchallenge") as batch:
        batch.drop_index("ix_verificationchallenge_org_id")
    op.drop_table("verificationchallenge")
    with op.batch_alter_table("membership") as batch:
        batch.drop_index("ix_membership_subject")
    op.drop_table("membership")

    with op.batch_alter_table("auditevent") as batch:
        batch.drop_column("detail")
    with op.batch_alter_table("trustgrant") as batch:
        batch.drop_column("revoke_reason")
        batch.drop_column("reason")
    with op.batch_alter_table("client") as batch:
        batch.drop_column("roles")

    # The old lifecycle had three states: anything not verified and not on its way there
    # could not call models, which is what `suspended` meant.
    op.execute("UPDATE organization SET status = 'active' WHERE status = 'verified'")
    op.execute(
        "UPDATE organization SET status = 'pending' WHERE status IN ('applied', 'verifying')"
    )
    op.execute(
        "UPDATE organization SET status = 'suspended' WHERE status IN ('rejected', 'revoked')"
    )
    with op.batch_alter_table("organization") as batch:
        batch.drop_index("ix_organization_domain")
        for column in (
            "updated_at",
            "version",
            "status_reason",
            "applied_by",
            "evidence",
            "country",
            "sector",
            "domain",
        ):
            batch.drop_column(column)
