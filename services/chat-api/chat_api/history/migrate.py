"""Bring the history database to the newest schema (Alembic), safely with several replicas.

PostgreSQL: the upgrade runs under a session-level advisory lock, so replicas starting at once run
it one after the other (the later ones find nothing to do). SQLite: the chart allows one replica,
but two processes on one host can still share a file (two local replicas, `chat-api migrate` while
it runs). SQLite's write lock does not keep them apart: Python's sqlite3 module opens no transaction
before DDL, so both see no table and the second CREATE TABLE fails ("table conversations already
exists", seen in CI). An exclusive flock on `<file>.migrate-lock` beside the database serialises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def sqlite_file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold an exclusive flock beside a SQLite database file; nothing for other databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    # Blocking open and flock in a thread: the event loop keeps serving while another process migrates.
    lock_file = await asyncio.to_thread(open, lock_path, "a")
    try:
        await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
    finally:
        lock_file.close()


async def migrate(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """Upgrade to head; returns the revision before and after."""
    async with sqlite_file_lock(engine):
        return await _migrate_locked(engine)


async def _migrate_locked(engine: AsyncEngine) -> tuple[str | None, str | None]:
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
