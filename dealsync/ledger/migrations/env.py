"""Alembic environment: run migrations on the connection dealsync hands over."""

from alembic import context

from dealsync.ledger.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "dealsync runs its migrations itself: use `dealsync init` (or Ledger.migrate())."
    )
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
