"""Conversations per person in a SQL database: SQLite (one replica) or PostgreSQL (any number).

SQLAlchemy 2 (asyncio) over aiosqlite or asyncpg; the schema is Alembic's (migrations/), run by
`migrate()` at start-up or by `python -m chat_api migrate`. Every query is scoped by owner: the
primary key is (owner, id), so a person can neither read nor overwrite another person's
conversation, even one with the same id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chat_api.history.schema import Conversation, ConversationBody, search_text

log = logging.getLogger("chat_api.history")
# pg_advisory_lock key: replicas starting together run the migrations one after the other.
MIGRATION_LOCK_KEY = 0x6C6C616D61  # "llama"


class Base(DeclarativeBase):
    pass


class ConversationRow(Base):
    __tablename__ = "conversations"

    owner: Mapped[str] = mapped_column(String(320), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(256))
    message_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    search_text: Mapped[str] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_conversations_owner_updated", "owner", "updated_at"),)


class HistoryLimit(Exception):
    """Over a per-person bound; the message names the bound and its setting."""


class StaleCopy(Exception):
    """A PUT of a copy older than the stored one (another device has changed it since)."""


@dataclass(frozen=True)
class Limits:
    max_conversations: int
    max_conversation_bytes: int
    max_total_bytes: int


@dataclass(frozen=True)
class Summary:
    id: str
    title: str
    createdAt: int
    updatedAt: int
    model: str
    messageCount: int


def dialect_of(url: str) -> str:
    return make_url(url).get_backend_name()


def describe_url(url: str) -> str:
    """The URL with its password masked, for logs and errors."""
    return make_url(url).render_as_string(hide_password=True)


def encode(conversation: ConversationBody) -> str:
    document = conversation.model_dump(mode="json", exclude_none=True, exclude={"id"})
    return json.dumps(document, ensure_ascii=False)


class Store:
    def __init__(self, url: str, limits: Limits, pool_size: int = 5) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.limits = limits
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "postgresql":
            options |= {"pool_size": pool_size, "max_overflow": pool_size}
        self.engine: AsyncEngine = create_async_engine(url, **options)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; serialise ours so "database is locked" never reaches a person.
        self._sqlite_write = asyncio.Lock()

    async def close(self) -> None:
        await self.engine.dispose()

    def _write_lock(self) -> asyncio.Lock | _NoLock:
        return self._sqlite_write if self.dialect == "sqlite" else _NoLock()

    async def list(
        self, owner: str, query: str = "", limit: int = 100, offset: int = 0
    ) -> tuple[list[Summary], int]:
        where = [ConversationRow.owner == owner]
        for word in query.lower().split():
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(ConversationRow.search_text.like(pattern, escape="\\"))
        async with self.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(ConversationRow).where(*where))
            rows = await session.execute(
                select(
                    ConversationRow.id,
                    ConversationRow.title,
                    ConversationRow.created_at,
                    ConversationRow.updated_at,
                    ConversationRow.model,
                    ConversationRow.message_count,
                )
                .where(*where)
                .order_by(ConversationRow.updated_at.desc(), ConversationRow.id)
                .limit(limit)
                .offset(offset)
            )
            return [Summary(*row) for row in rows], int(total or 0)

    async def get(self, owner: str, conversation_id: str) -> dict[str, Any] | None:
        async with self.sessions() as session:
            document = await session.scalar(
                select(ConversationRow.document).where(
                    ConversationRow.owner == owner, ConversationRow.id == conversation_id
                )
            )
        if document is None:
            return None
        return {"id": conversation_id, **json.loads(document)}

    async def all(self, owner: str) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(ConversationRow.id, ConversationRow.document)
                .where(ConversationRow.owner == owner)
                .order_by(ConversationRow.updated_at.desc(), ConversationRow.id)
            )
            return [{"id": cid, **json.loads(doc)} for cid, doc in rows]

    async def put(self, owner: str, conversation_id: str, body: ConversationBody) -> bool:
        """Create or replace; True when it was created. Raises HistoryLimit over a bound."""
        document = encode(body)
        async with self._write_lock(), self.sessions() as session, session.begin():
            stored_at = await session.scalar(
                select(ConversationRow.updated_at)
                .where(ConversationRow.owner == owner, ConversationRow.id == conversation_id)
                .with_for_update()
            )
            # The UI moves updatedAt forward with every new message: a copy behind the stored one
            # comes from a device that has not seen those messages, and would erase them.
            if stored_at is not None and body.updatedAt < stored_at:
                raise StaleCopy(
                    f"conversation {conversation_id} was changed on another device since this copy "
                    f"(stored updatedAt {stored_at} > {body.updatedAt}); reload the page to get the newer one"
                )
            created = await self._check_room(session, owner, conversation_id, len(document.encode()))
            await session.execute(self._upsert(owner, conversation_id, body, document))
        return created

    async def import_many(self, owner: str, conversations: list[Conversation]) -> dict[str, int]:
        """Import what a browser holds: a conversation not here is added, one here is replaced only
        when the imported copy is newer (`updatedAt`). Importing the same thing twice changes
        nothing the second time. All or nothing: over a bound, nothing is imported."""
        counts = {"imported": 0, "updated": 0, "unchanged": 0}
        async with self._write_lock(), self.sessions() as session, session.begin():
            ids = [c.id for c in conversations]
            existing = (
                dict(
                    (
                        await session.execute(
                            select(ConversationRow.id, ConversationRow.updated_at).where(
                                ConversationRow.owner == owner, ConversationRow.id.in_(ids)
                            )
                        )
                    ).all()
                )
                if ids
                else {}
            )
            seen: set[str] = set()
            for conversation in conversations:
                if conversation.id in seen:
                    continue
                seen.add(conversation.id)
                stamp = existing.get(conversation.id)
                if stamp is not None and conversation.updatedAt <= stamp:
                    counts["unchanged"] += 1
                    continue
                body = ConversationBody.model_validate(conversation.model_dump(exclude={"id"}))
                document = encode(body)
                await self._check_room(session, owner, conversation.id, len(document.encode()))
                await session.execute(self._upsert(owner, conversation.id, body, document))
                counts["imported" if stamp is None else "updated"] += 1
        return counts

    async def delete(self, owner: str, conversation_id: str) -> bool:
        async with self._write_lock(), self.sessions() as session, session.begin():
            result = await session.execute(
                delete(ConversationRow).where(
                    ConversationRow.owner == owner, ConversationRow.id == conversation_id
                )
            )
        return bool(result.rowcount)

    async def _check_room(self, session: Any, owner: str, conversation_id: str, size: int) -> bool:
        limits = self.limits
        if size > limits.max_conversation_bytes:
            raise HistoryLimit(
                f"conversation {conversation_id} is {size} bytes stored; the limit is "
                f"{limits.max_conversation_bytes} bytes (CHAT_API_HISTORY_MAX_CONVERSATION_BYTES): "
                "delete some messages or start a new conversation"
            )
        count, total, own = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(ConversationRow.size_bytes), 0),
                    func.coalesce(
                        func.sum(ConversationRow.size_bytes).filter(ConversationRow.id == conversation_id), -1
                    ),
                ).where(ConversationRow.owner == owner)
            )
        ).one()
        created = own == -1
        if created and count >= limits.max_conversations:
            raise HistoryLimit(
                f"you have {count} conversations stored; the limit is {limits.max_conversations} "
                "(CHAT_API_HISTORY_MAX_CONVERSATIONS): delete old ones first"
            )
        new_total = total - max(own, 0) + size
        if new_total > limits.max_total_bytes:
            raise HistoryLimit(
                f"your conversations would take {new_total} bytes; the limit per person is "
                f"{limits.max_total_bytes} bytes (CHAT_API_HISTORY_MAX_BYTES): delete old ones first"
            )
        return created

    def _upsert(self, owner: str, conversation_id: str, body: ConversationBody, document: str) -> Any:
        values = {
            "owner": owner,
            "id": conversation_id,
            "title": body.title,
            "created_at": body.createdAt,
            "updated_at": body.updatedAt,
            "model": body.settings.model,
            "message_count": len(body.messages),
            "size_bytes": len(document.encode()),
            "search_text": search_text(body),
            "document": document,
        }
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        statement = insert(ConversationRow).values(**values)
        changed = {k: v for k, v in values.items() if k not in ("owner", "id")}
        return statement.on_conflict_do_update(index_elements=["owner", "id"], set_=changed)


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
