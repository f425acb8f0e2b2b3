"""keys are claims: intents per object type, one active link per vendor record

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACTIVE = sa.text("state = 'active'")


def upgrade() -> None:
    with op.batch_alter_table("create_intents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("object_type", sa.String(length=16), nullable=False, server_default="deals")
        )
    # Earlier intents did not say what they created: welcome notes and deal files tell by their
    # key; a note intent by the note link its twin got.
    by_key = sa.text("UPDATE create_intents SET object_type = :kind WHERE key LIKE :pattern")
    op.execute(by_key.bindparams(kind="notes", pattern="%:welcome"))
    op.execute(by_key.bindparams(kind="files", pattern="%:vendor:file-%"))
    op.execute(
        "UPDATE create_intents SET object_type = 'notes' WHERE object_type = 'deals' "
        "AND target_id IS NOT NULL AND EXISTS (SELECT 1 FROM links l WHERE l.pair = create_intents.pair "
        "AND l.object_type = 'notes' AND ((create_intents.target_side = 'vendor' "
        "AND l.vendor_id = create_intents.target_id) OR (create_intents.target_side = 'partner' "
        "AND l.partner_id = create_intents.target_id)))"
    )
    with op.batch_alter_table("create_intents", schema=None) as batch_op:
        batch_op.drop_constraint("uq_intents_key", type_="unique")
        batch_op.create_unique_constraint("uq_intents_key", ["pair", "object_type", "key"])
    # A vendor record linked by two pairs (a forged key could do that before): the first link
    # stays; the later ones are set aside as disputed and their records are quarantined on the next run.
    op.execute(
        "UPDATE links SET state = 'disputed' WHERE state = 'active' AND EXISTS (SELECT 1 FROM links o "
        "WHERE o.object_type = links.object_type AND o.vendor_id = links.vendor_id "
        "AND o.state = 'active' AND o.id < links.id)"
    )
    op.create_index(
        "uq_links_vendor_active",
        "links",
        ["object_type", "vendor_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_links_vendor_active", table_name="links")
    with op.batch_alter_table("create_intents", schema=None) as batch_op:
        batch_op.drop_constraint("uq_intents_key", type_="unique")
        batch_op.create_unique_constraint("uq_intents_key", ["pair", "key"])
        batch_op.drop_column("object_type")
