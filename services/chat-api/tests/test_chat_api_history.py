"""Conversations on the server (issue 19): the same route tests on SQLite and a real PostgreSQL.

Who is a person here: someone signed in, with the session cookie chat-api's /auth/callback writes
(tests/sessions.py: signed with the app's own session key, verified by its real middleware); `ops`
is an operator key (a service).
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_api.app import create_app
from chat_api.config import Settings
from chat_api.history.migrate import head_revision, migrate
from chat_api.history.store import Limits, Store
from child_env import chat_api_env
from sessions import signed_in, signin_settings
from sqlalchemy import inspect, text

from tests.fixtures.postgres import postgres_server  # noqa: F401 - a fixture

OPS = {"Authorization": "Bearer key-ops"}  # an operator key: a service, not a person

BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.unit),
    pytest.param("postgresql", marks=pytest.mark.integration),
]


T0 = 1_700_000_000_000


def ui_conversation(cid: str, title: str, text: str, updated: int = T0) -> dict[str, Any]:
    """One conversation as ui/src/lib/store.ts keeps it (localStorage `llama-chat.v1`)."""
    return {
        "id": cid,
        "title": title,
        "createdAt": updated - 60_000,
        "updatedAt": updated,
        "settings": {"systemPrompt": "Answer briefly.", "temperature": 0.7, "maxTokens": 512, "model": ""},
        "messages": [
            {"id": f"{cid}-u1", "role": "user", "content": text, "status": "complete"},
            {
                "id": f"{cid}-a1",
                "role": "assistant",
                "content": "Second answer about tides",
                "status": "complete",
                "stats": {"ttftMs": 120, "tokensPerS": 31.5, "completionTokens": 9, "finishReason": "stop"},
                "variants": [
                    {"content": "First answer mentions the moon", "status": "stopped"},
                    {"content": "Second answer about tides", "status": "complete"},
                ],
                "variant": 1,
            },
            {
                "id": f"{cid}-a2",
                "role": "assistant",
                "content": "",
                "status": "failed",
                "problem": {"title": "The model server is busy", "action": "Retry", "retryable": True},
                "droppedForContext": 2,
            },
        ],
    }


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "ops").write_text(OPS["Authorization"].removeprefix("Bearer "))
    return folder


@pytest.fixture
def people(tmp_path: Path, keys_dir: Path) -> dict[str, Any]:
    """Settings for who chat-api serves: people who sign in (with a provider that is never
    contacted) and one operator key."""
    return {
        **signin_settings(tmp_path / "signin"),
        "api_keys_dir": keys_dir,
        "upstream_url": "http://127.0.0.1:9",
    }


@pytest.fixture
async def alice(people: dict[str, Any]) -> dict[str, str]:
    return await signed_in(Settings(**people), "alice@example.com", "Alice")


@pytest.fixture
async def bob(people: dict[str, Any]) -> dict[str, str]:
    return await signed_in(Settings(**people), "bob@example.com", "Bob")


@pytest.fixture
def make_client(database_url: str, people: dict[str, Any]) -> Callable[..., Any]:
    """An async context manager: the app with its lifespan (migrations run) and an httpx client."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            **{**people, "database_url": database_url, "rate_limit_per_minute": 0, **overrides}
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://chat-api") as client:
                yield client

    return make


async def test_only_a_person_has_server_history(make_client, database_url, tmp_path, people, alice):
    async with make_client() as api:
        answer = await api.get("/api/conversations", headers=OPS)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "history_needs_person"
        assert "service key" in answer.json()["error"]["message"]
        assert (await api.get("/api/conversations")).status_code == 401
        assert (await api.get("/api/conversations", headers=alice)).status_code == 200
        # The session's signature is checked: a cookie signed with another key is nobody's.
        forged = await signed_in(Settings(**signin_settings(tmp_path / "other-key")), "alice@example.com")
        answer = await api.get("/api/conversations", headers=forged)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "signin_required"
    # Local mode (`make up`): no keys at all, everyone is anonymous: the browser keeps history.
    settings = Settings(database_url=database_url, upstream_url="http://127.0.0.1:9")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as api:
            answer = await api.put("/api/conversations/x1", json={"title": "t"})
            assert answer.status_code == 403
            assert "anonymous" in answer.json()["error"]["message"]
            assert "localStorage" in answer.json()["error"]["message"]


@pytest.mark.unit
async def test_without_a_database_there_is_no_server_history_and_the_answer_says_so(people, alice):
    app = create_app(Settings(**people, database_url=""))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as api:
            answer = await api.get("/api/conversations", headers=alice)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "history_off"
            assert "CHAT_API_DATABASE_URL is empty" in answer.json()["error"]["message"]


@pytest.mark.unit
async def test_asking_for_history_never_uses_up_the_chat_rate_limit(people, alice, tmp_path):
    """The page asks GET /api/conversations at every load to pick its store; with a burst of one,
    that must not leave the first chat message rate-limited (anonymous or a person)."""
    settings = Settings(
        **people,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
        rate_limit_per_minute=6,
        rate_limit_burst=2,
    )
    app = create_app(settings)
    services = app.state.services
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as api:
            for _ in range(3):
                assert (await api.get("/api/conversations", headers=OPS)).status_code == 403
            answers = [(await api.get("/api/conversations", headers=alice)).status_code for _ in range(3)]
            assert answers == [200, 200, 429]  # history has its own bucket per person
            alice_id = (await api.get("/auth/me", headers=alice)).json()["id"]
        assert alice_id.startswith("user:")
        for who in ("key:ops", alice_id):
            await services.quotas.check_request(who)  # the chat's bucket is full: two sends right away
            await services.quotas.check_request(who)


async def test_create_read_update_list_delete(make_client, alice):
    conversation = ui_conversation("c-1", "Tides", "Why are there two tides a day?")
    body = {k: v for k, v in conversation.items() if k != "id"}
    async with make_client() as api:
        assert (await api.get("/api/conversations", headers=alice)).json() == {
            "conversations": [],
            "total": 0,
        }
        created = await api.put("/api/conversations/c-1", json=body, headers=alice)
        assert created.status_code == 201, created.text
        got = await api.get("/api/conversations/c-1", headers=alice)
        assert got.json() == conversation  # the UI's document back, variants, stats and problem included
        body["title"] = "Tides, renamed"
        body["updatedAt"] += 1000
        body["settings"]["model"] = "llama-3.2-3b"
        assert (await api.put("/api/conversations/c-1", json=body, headers=alice)).status_code == 200
        listed = (await api.get("/api/conversations", headers=alice)).json()
        assert listed["total"] == 1
        assert listed["conversations"] == [
            {
                "id": "c-1",
                "title": "Tides, renamed",
                "createdAt": body["createdAt"],
                "updatedAt": body["updatedAt"],
                "model": "llama-3.2-3b",
                "messageCount": 3,
            }
        ]
        assert (await api.delete("/api/conversations/c-1", headers=alice)).status_code == 204
        missing = await api.get("/api/conversations/c-1", headers=alice)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation_not_found"
        assert (await api.delete("/api/conversations/c-1", headers=alice)).status_code == 404


async def test_a_person_never_sees_or_changes_another_persons_conversations(make_client, alice, bob):
    alices = ui_conversation("same-id", "Alice's plans", "secret plans of alice")
    async with make_client() as api:
        await api.put("/api/conversations/same-id", json=alices, headers=alice)
        assert (await api.get("/api/conversations/same-id", headers=bob)).status_code == 404
        assert (await api.get("/api/conversations", headers=bob)).json()["total"] == 0
        assert (await api.get("/api/conversations?q=secret", headers=bob)).json()["total"] == 0
        assert (await api.delete("/api/conversations/same-id", headers=bob)).status_code == 404
        bobs = ui_conversation("same-id", "Bob's own", "bob writes here")
        assert (await api.put("/api/conversations/same-id", json=bobs, headers=bob)).status_code == 201
        assert (await api.get("/api/conversations/same-id", headers=alice)).json()["title"] == "Alice's plans"
        assert (await api.get("/api/conversations/same-id", headers=bob)).json()["title"] == "Bob's own"
        exported = (await api.get("/api/conversations/export?format=json", headers=bob)).json()
        assert [c["title"] for c in exported["conversations"]] == ["Bob's own"]
        await api.post("/api/conversations/import", json={"conversations": [alices]}, headers=bob)
        # Importing a copy of alice's id into bob's store only ever touches bob's row.
        assert (await api.get("/api/conversations/same-id", headers=alice)).json()["title"] == "Alice's plans"


async def test_a_stale_copy_from_another_device_does_not_erase_newer_messages(make_client, alice):
    laptop = ui_conversation("d", "Shared", "first question", T0)
    async with make_client() as api:
        assert (await api.put("/api/conversations/d", json=laptop, headers=alice)).status_code == 201
        phone = copy.deepcopy(laptop)
        phone["messages"].append(
            {"id": "d-u2", "role": "user", "content": "from the phone", "status": "complete"}
        )
        phone["updatedAt"] = T0 + 5000
        assert (await api.put("/api/conversations/d", json=phone, headers=alice)).status_code == 200
        # The laptop, which never saw the phone's message, renames its old copy.
        laptop["title"] = "Renamed on the laptop"
        stale = await api.put("/api/conversations/d", json=laptop, headers=alice)
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "conversation_changed"
        assert "reload" in stale.json()["error"]["message"]
        kept = (await api.get("/api/conversations/d", headers=alice)).json()
        assert kept["messages"][-1]["content"] == "from the phone" and kept["title"] == "Shared"
        # The same copy again (a rename, a streamed answer's text: updatedAt unchanged) is fine.
        phone["title"] = "Renamed on the phone"
        assert (await api.put("/api/conversations/d", json=phone, headers=alice)).status_code == 200


async def test_search_covers_titles_every_text_and_variants_newest_first(make_client, alice):
    async with make_client() as api:
        for cid, title, text, updated in [
            ("a", "Tides", "Why two tides a day?", 3),
            ("b", "Baking", "How long does bread rise?", 2),
            ("c", "100% rye_bread", "Sourdough starter", 1),
        ]:
            conversation = ui_conversation(cid, title, text, 1_700_000_000_000 + updated)
            assert (
                await api.put(f"/api/conversations/{cid}", json=conversation, headers=alice)
            ).status_code == 201

        async def ids(q: str) -> list[str]:
            answer = await api.get("/api/conversations", params={"q": q}, headers=alice)
            return [c["id"] for c in answer.json()["conversations"]]

        assert await ids("") == ["a", "b", "c"]
        assert await ids("tides") == ["a", "b", "c"]  # every conversation's answer mentions tides
        assert await ids("BREAD") == ["b", "c"]  # case-insensitive, titles and questions
        assert await ids("moon") == ["a", "b", "c"]  # a variant that is not shown still counts
        assert await ids("bread rise") == ["b"]  # every word must occur
        assert await ids("100%") == ["c"]  # % and _ are literal, not wildcards
        assert await ids("rye_") == ["c"]
        assert await ids("r_e") == []  # as a wildcard it would match "rye"
        page = (await api.get("/api/conversations?limit=1&offset=1", headers=alice)).json()
        assert [c["id"] for c in page["conversations"]] == ["b"] and page["total"] == 3


async def test_sizes_are_bounded_with_messages_that_name_the_setting(make_client, alice, bob):
    small = {k: v for k, v in ui_conversation("s", "small", "hello").items() if k != "id"}
    async with make_client(
        history_max_conversations=2, history_max_conversation_bytes=4096, history_max_bytes=4500
    ) as api:
        assert (await api.put("/api/conversations/s1", json=small, headers=alice)).status_code == 201
        assert (await api.put("/api/conversations/s2", json=small, headers=alice)).status_code == 201
        third = await api.put("/api/conversations/s3", json=small, headers=alice)
        assert third.status_code == 413
        assert third.json()["error"]["code"] == "history_limit"
        assert "CHAT_API_HISTORY_MAX_CONVERSATIONS" in third.json()["error"]["message"]
        # Replacing one that exists is not a new one.
        assert (await api.put("/api/conversations/s2", json=small, headers=alice)).status_code == 200

        big = copy.deepcopy(small)
        big["messages"][0]["content"] = "x" * 5000
        too_big = await api.put("/api/conversations/s2", json=big, headers=alice)
        assert too_big.status_code == 413
        assert "4096 bytes" in too_big.json()["error"]["message"]

        grown = copy.deepcopy(small)
        grown["messages"][0]["content"] = "y" * 3000
        over_total = await api.put("/api/conversations/s2", json=grown, headers=alice)
        assert over_total.status_code == 413
        assert "CHAT_API_HISTORY_MAX_BYTES" in over_total.json()["error"]["message"]
        # Nothing half-applied: s2 is still the small one.
        assert (await api.get("/api/conversations/s2", headers=alice)).json()["messages"][0][
            "content"
        ] == "hello"
        # Bob has his own room.
        assert (await api.put("/api/conversations/s3", json=small, headers=bob)).status_code == 201


async def test_bad_input_is_refused_with_the_field_named(make_client, alice):
    good = ui_conversation("g", "good", "hello")
    async with make_client() as api:
        extra = copy.deepcopy(good)
        extra["messages"][0]["colour"] = "red"
        answer = await api.put("/api/conversations/g", json=extra, headers=alice)
        assert answer.status_code == 400
        assert "messages.0.colour" in answer.json()["error"]["message"]
        role = copy.deepcopy(good)
        role["messages"][0]["role"] = "system"
        answer = await api.put("/api/conversations/g", json=role, headers=alice)
        assert answer.status_code == 400 and "messages.0.role" in answer.json()["error"]["message"]
        bad_id = await api.put("/api/conversations/has%20space", json=good, headers=alice)
        assert bad_id.status_code == 400
        not_json = await api.put(
            "/api/conversations/g", content=b"{", headers={**alice, "content-type": "application/json"}
        )
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
        assert (await api.get("/api/conversations", headers=alice)).json()["total"] == 0


async def test_import_of_what_the_browser_holds_is_idempotent_and_keeps_the_newer_copy(
    make_client, alice, bob
):
    local_storage = {
        "conversations": [
            ui_conversation("l1", "From the laptop", "first", T0 + 1000),
            ui_conversation("l2", "Another", "second", T0 + 2000),
        ],
        "activeId": "l2",
    }
    async with make_client() as api:
        first = await api.post("/api/conversations/import", json=local_storage, headers=alice)
        assert first.json() == {"imported": 2, "updated": 0, "unchanged": 0}
        before = (await api.get("/api/conversations/export?format=json", headers=alice)).json()[
            "conversations"
        ]
        again = await api.post("/api/conversations/import", json=local_storage, headers=alice)
        assert again.json() == {"imported": 0, "updated": 0, "unchanged": 2}
        after = (await api.get("/api/conversations/export?format=json", headers=alice)).json()[
            "conversations"
        ]
        assert after == before

        # The server copy was edited since (newer): an old browser copy does not overwrite it.
        edited = ui_conversation("l1", "Edited on the phone", "first", T0 + 5000)
        assert (await api.put("/api/conversations/l1", json=edited, headers=alice)).status_code == 200
        newer_browser = ui_conversation("l2", "Changed in the browser", "second", T0 + 3000)
        mixed = {"conversations": [local_storage["conversations"][0], newer_browser]}
        third = await api.post("/api/conversations/import", json=mixed, headers=alice)
        assert third.json() == {"imported": 0, "updated": 1, "unchanged": 1}
        titles = {
            c["id"]: c["title"]
            for c in (await api.get("/api/conversations", headers=alice)).json()["conversations"]
        }
        assert titles == {"l1": "Edited on the phone", "l2": "Changed in the browser"}

        # An export (JSON) imports unchanged: it is the same shape.
        export = (await api.get("/api/conversations/export?format=json", headers=alice)).json()
        assert (await api.post("/api/conversations/import", json=export, headers=bob)).json()["imported"] == 2
        bobs = (await api.get("/api/conversations/export?format=json", headers=bob)).json()["conversations"]
        assert bobs == export["conversations"]


async def test_an_import_over_a_bound_imports_nothing(make_client, alice):
    many = {"conversations": [ui_conversation(f"m{i}", f"t{i}", "x", T0 + i) for i in range(5)]}
    async with make_client(history_max_conversations=3) as api:
        answer = await api.post("/api/conversations/import", json=many, headers=alice)
        assert answer.status_code == 413 and "CHAT_API_HISTORY_MAX_CONVERSATIONS" in answer.text
        assert (await api.get("/api/conversations", headers=alice)).json()["total"] == 0
    async with make_client(history_max_import_bytes=2048) as api:
        answer = await api.post("/api/conversations/import", json=many, headers=alice)
        assert answer.status_code == 413 and "2048 bytes" in answer.json()["error"]["message"]


async def test_export_one_and_all_as_markdown_and_json(make_client, alice):
    async with make_client() as api:
        conversation = ui_conversation("e1", "Tides & moon", "Why are there two tides a day?")
        await api.put("/api/conversations/e1", json=conversation, headers=alice)
        md = await api.get("/api/conversations/e1/export?format=markdown", headers=alice)
        assert md.headers["content-type"].startswith("text/markdown")
        assert md.headers["content-disposition"] == 'attachment; filename="tides-moon.md"'
        assert md.text.startswith("# Tides & moon\n")
        assert "> Answer briefly." in md.text
        assert "## You\n\nWhy are there two tides a day?" in md.text
        assert "## Assistant (answer 2 of 2)\n\nSecond answer about tides" in md.text
        one = await api.get("/api/conversations/e1/export", headers=alice)
        assert json.loads(one.text) == conversation
        everything = await api.get("/api/conversations/export?format=markdown", headers=alice)
        assert everything.text.count("# Tides & moon") == 1
        assert (await api.get("/api/conversations/e1/export?format=pdf", headers=alice)).status_code == 400


async def test_migrations_run_up_from_an_empty_database_and_again_as_a_no_op(database_url):
    store = Store(database_url, Limits(10, 10_000, 100_000))
    try:
        assert await migrate(store.engine) == (None, head_revision())
        assert await migrate(store.engine) == (head_revision(), head_revision())
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert tables == {"conversations", "alembic_version"}
        assert version == head_revision()
    finally:
        await store.close()


@pytest.mark.integration
async def test_replicas_starting_together_migrate_once_on_postgresql(postgres_server):  # noqa: F811
    url = await asyncio.to_thread(postgres_server.new_database)
    stores = [Store(url, Limits(10, 10_000, 100_000)) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(s.engine) for s in stores))
        # One replica ran the upgrade; the others waited for the lock and found nothing to do.
        assert sorted(results, key=str) == sorted(
            [(None, head_revision())] + [(head_revision(), head_revision())] * 3, key=str
        )
    finally:
        for store in stores:
            await store.close()


@pytest.mark.integration
def test_processes_migrating_one_sqlite_file_together_run_one_after_the_other(tmp_path):
    """Two local replicas (or `chat-api migrate` beside a running one) on one file: CI once saw the
    second fail with "table conversations already exists"; the flock beside the file prevents it."""
    env = chat_api_env(CHAT_API_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    migrators = [
        subprocess.Popen(
            [sys.executable, "-m", "chat_api", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [m.communicate(timeout=120)[0] for m in migrators]
    assert [m.returncode for m in migrators] == [0] * 6, outputs
    head = head_revision()
    assert sorted(outputs) == sorted(
        [f"chat-api: conversation database at revision {head} (was empty)\n"]
        + [f"chat-api: conversation database at revision {head} (was {head})\n"] * 5
    )


@pytest.mark.unit
def test_a_database_url_chat_api_cannot_use_is_refused_without_echoing_the_password():
    with pytest.raises(ValueError, match="CHAT_API_DATABASE_URL must be") as refused:
        Settings(database_url="mysql://u:hunter2@db/x")
    assert "hunter2" not in str(refused.value)
