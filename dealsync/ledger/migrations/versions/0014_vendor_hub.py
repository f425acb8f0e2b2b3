"""vendor hub: the pairs' inboxes of what one read of the vendor routed to them, and its reads

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("pair", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("parents", sa.JSON(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pair", "object_type", "record_id"),
    )
    op.create_table(
        "hub_state",
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.Column("last_started_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("hub_state")
    op.drop_table("inbox")
