"""mapping fields: the fingerprint of each synced field a pair's links were last synced with

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mapping_fields",
        sa.Column("pair", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("pair", "object_type", "field"),
    )


def downgrade() -> None:
    op.drop_table("mapping_fields")
