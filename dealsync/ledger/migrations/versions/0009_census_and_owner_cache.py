"""census of counted records (quiet runs detect deletions by counts) and a cache of owners

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "census",
        sa.Column("pair", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pair", "side", "object_type", "record_id"),
    )
    op.create_table(
        "owner_cache",
        sa.Column("pair", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("read_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("pair", "side"),
    )
    with op.batch_alter_table("cursors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("census_ready", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("cursors", schema=None) as batch_op:
        batch_op.drop_column("census_ready")
    op.drop_table("owner_cache")
    op.drop_table("census")
