"""Bring the history database to the newest schema (Alembic), safely with several replicas.

PostgreSQL: the upgrade runs under a session-level advisory lock, so replicas starting at once run
it one after the other (the later ones find nothing to do). SQLite: one replica only (the chart
refuses more), and SQLite's own write lock keeps a second process out of the transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_api.history.store import MIGRATION_LOCK_KEY, describe_url

log = logging.getLogger("chat_api.history")
# Alembic says "Context impl SQLiteImpl." at INFO on every start; chat-api logs the migration itself.
logging.getLogger("alembic").setLevel(logging.WARNING)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Any) -> tuple[str | None, str | None]:
    before = MigrationContext.configure(connection).get_current_revision()
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    after = MigrationContext.configure(connection).get_current_revision()
    return before, after


async def migrate(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """Upgrade to head; returns the revision before and after."""
    where = describe_url(engine.url.render_as_string(hide_password=False))
    async with engine.connect() as connection:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await connection.commit()
        try:
            before, after = await connection.run_sync(_upgrade)
            await connection.commit()
        finally:
            if postgres:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                await connection.commit()
    if before != after:
        log.info("history database migrated", extra={"database": where, "from": before, "to": after})
    return before, after
