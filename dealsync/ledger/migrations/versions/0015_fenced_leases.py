"""fenced leases: a number that grows with every acquisition, and when the lease expires

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    # A lease of the version before expires as its heartbeat said (the TTL was 60 s then).
    leases = sa.table(
        "leases",
        sa.column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    op.execute(leases.update().values(expires_at=leases.c.heartbeat_at))
    with op.batch_alter_table("leases") as batch:
        batch.alter_column("expires_at", nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("fence")
