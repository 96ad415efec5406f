"""Alembic's environment for chat-api's history database.

Run through `chat_api.history.migrate` (start-up, or `python -m chat_api migrate`), which hands
over an open connection in `config.attributes["connection"]`: the one holding the migration lock.
"""

from __future__ import annotations

from alembic import context

from chat_api.history.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the migrations with `python -m chat_api migrate` (it opens the database and takes the lock)"
    )
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
