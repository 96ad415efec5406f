"""Per-person API keys and per-person limits in the shared store, against a real redis-server
(tests/fixtures/redis_server.py) and two real chat-api processes (`python -m chat_api`) in front
of one crafted upstream (crafted_upstream.py: a vLLM double, since the point here is chat-api's
counting, not generation; it reports the usage vLLM 0.32 puts in its final stream chunk).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from child_env import chat_api_env
from crafted_upstream import SSE_HEAD, CraftedUpstream, Stack, chat_body, chunk, delta, event, raw

from tests.fixtures.redis_server import RedisServer, free_port, redis_server

pytestmark = pytest.mark.integration

OWNER_A = "user:accounts.example.com:alice-0001"
OWNER_B = "user:accounts.example.com:bob-0002"
# What the upstream reports per answer: well above chat-api's admission estimate of "hi"
# (5 tokens), so a budget only holds if the final usage is counted.
PROMPT_TOKENS, COMPLETION_TOKENS = 40, 60


def stream_with_usage() -> bytes:
    usage = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "tiny-llama", "choices": [],
             "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                       "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}}  # fmt: skip
    body = event(delta("Hel")) + event(delta("lo")) + event(usage) + event(b"[DONE]")
    return SSE_HEAD + chunk(body) + b"0\r\n\r\n"


class Upstream:
    """The crafted upstream alone, in a background loop (chat-api runs in other processes)."""

    def __enter__(self) -> Upstream:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.crafted = CraftedUpstream()
        self.crafted.script = raw(stream_with_usage())
        self.port = asyncio.run_coroutine_threadsafe(self.crafted.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.crafted.server is not None
        self.loop.call_soon_threadsafe(self.crafted.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def base_env(redis_url: str) -> dict[str, str]:
    return chat_api_env(CHAT_API_REDIS_URL=redis_url, CHAT_API_REDIS_TIMEOUT_S="1")


class ChatApi:
    """`python -m chat_api` as its own process, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**env, "CHAT_API_HOST": "127.0.0.1", "CHAT_API_PORT": str(self.port)}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chat_api"], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_started(self) -> None:
        log = self.log
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"chat-api did not start: {log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=20)


def operator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chat_api", *args], env=env, capture_output=True, text=True, timeout=60
    )


def create_key(env: dict[str, str], owner: str, name: str, *extra: str) -> str:
    done = operator(
        env, "keys", "create", "--owner", owner, "--email", "a@example.com", "--name", name, *extra
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("llp_") and len(key) == 47
    return key


def chat(api: ChatApi, key: str) -> str:
    stream = api.client(key).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[tuple[RedisServer, dict[str, str], ChatApi, ChatApi]]:
    """One real Redis, two chat-api processes sharing it: 5 requests a minute, 250 tokens a minute."""
    tmp = tmp_path_factory.mktemp("person-keys")
    (tmp / "redis").mkdir()
    with redis_server(tmp / "redis") as redis, Upstream() as upstream:
        env = base_env(redis.url)
        server_env = {
            **env,
            "CHAT_API_UPSTREAM_URL": f"http://127.0.0.1:{upstream.port}",
            "CHAT_API_DEFAULT_MODEL": "tiny-llama",
            "CHAT_API_RETRIES": "0",
            "CHAT_API_RATE_LIMIT_PER_MINUTE": "5",
            "CHAT_API_TOKEN_BUDGET_PER_MINUTE": "250",
            "CHAT_API_REDIS_TIMEOUT_S": "1",
            # Both replicas migrate one file at start, as two local replicas would (never the
            # working directory's default file).
            "CHAT_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'history.db'}",
        }
        first, second = ChatApi(server_env, tmp / "a.log"), ChatApi(server_env, tmp / "b.log")
        try:
            first.wait_started()
            second.wait_started()
            yield redis, env, first, second
        finally:
            first.stop()
            second.stop()


def test_a_key_works_with_the_openai_client_until_it_is_revoked_then_every_replica_refuses_it(platform):
    redis, env, first, second = platform
    key = create_key(env, OWNER_A, "laptop")
    assert chat(first, key) == "Hello"
    assert [m.id for m in second.client(key).models.list().data] == ["tiny-llama"]

    # Keys survive a restart of the store (append-only file), so nobody has to make new ones.
    redis.restart()
    assert chat(second, key) == "Hello"

    listed = operator(env, "keys", "list", "--owner", OWNER_A, "--json")
    assert listed.returncode == 0, listed.stderr
    [info] = json.loads(listed.stdout)
    assert (info["name"], info["owner"], info["expires"]) == ("laptop", OWNER_A, None)
    assert key not in listed.stdout and info["hint"] == key[:8]

    revoked = operator(env, "keys", "revoke", "--owner", OWNER_A, "--name", "laptop")
    assert revoked.returncode == 0, revoked.stderr
    for api in (first, second):  # no cache anywhere: refused at once, by both replicas
        with pytest.raises(openai.AuthenticationError) as refused:
            api.client(key).models.list()
        assert "unknown or revoked" in str(refused.value)

    logs = first.log.read_text() + second.log.read_text()
    assert key not in logs and key[4:20] not in logs
    assert '"key_name": "laptop"' in logs and f'"identity": "{OWNER_A}"' in logs


def test_an_expired_key_is_refused(platform):
    from chat_api.config import Settings
    from chat_api.store import PersonKeys, connect

    redis, _, first, _ = platform

    async def create() -> str:
        client = connect(Settings(redis_url=redis.url))
        try:
            now = time.time()
            key, _ = await PersonKeys(client).create(OWNER_B, "b@example.com", "short-lived", now, now + 3)
            return key
        finally:
            await client.aclose()

    key = asyncio.run(create())
    assert chat(first, key) == "Hello"
    time.sleep(3.1)
    with pytest.raises(openai.AuthenticationError):
        first.client(key).models.list()


def test_two_replicas_enforce_one_persons_request_limit_together(platform):
    _, env, first, second = platform
    key = create_key(env, "user:accounts.example.com:carol-0003", "ci")
    other = create_key(env, "user:accounts.example.com:dave-0004", "ci")
    headers = {"authorization": f"Bearer {key}"}
    statuses = [
        httpx.get((first, second)[i % 2].url + "/v1/models", headers=headers, timeout=10) for i in range(6)
    ]
    # 5 a minute in all: per replica that would have been 5 each.
    assert [r.status_code for r in statuses] == [200] * 5 + [429]
    refused = statuses[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    message = refused.json()["error"]["message"]
    assert "5 requests per minute per person" in message and "CHAT_API_RATE_LIMIT_PER_MINUTE" in message
    # Another person is not affected.
    assert (
        httpx.get(second.url + "/v1/models", headers={"authorization": f"Bearer {other}"}).status_code == 200
    )


def test_two_replicas_enforce_one_persons_token_budget_together_with_the_usage_vllm_reports(platform):
    _, env, first, second = platform
    owner = "user:accounts.example.com:erin-0005"
    key = create_key(env, owner, "notebook")
    # 100 tokens per answer (from the final usage chunk), 250 a minute: the third answer still
    # starts (200 used), the fourth does not (300 used), whichever replica it reaches.
    for api in (first, second, first):
        assert chat(api, key) == "Hello"
    with pytest.raises(openai.RateLimitError) as refused:
        chat(second, key)
    body = refused.value.body
    assert body["code"] == "token_budget_exceeded"
    assert "250 tokens per minute per person (CHAT_API_TOKEN_BUDGET_PER_MINUTE)" in body["message"]
    assert int(refused.value.response.headers["retry-after"]) >= 1

    usage = operator(env, "usage", "--json")
    assert usage.returncode == 0, usage.stderr
    rows = {row["principal"]: row for row in json.loads(usage.stdout)["usage"]}
    assert rows[owner] == {
        "principal": owner,
        "requests": 3,
        "prompt_tokens": 3 * PROMPT_TOKENS,
        "completion_tokens": 3 * COMPLETION_TOKENS,
        "refused": 1,
        "tokens": 300,
    }
    table = operator(env, "usage")
    assert table.returncode == 0 and owner in table.stdout and "PROMPT_TOKENS" in table.stdout

    metrics = httpx.get(first.url + "/metrics").text
    assert 'chat_api_authenticated_requests_total{kind="person",via="key"}' in metrics
    assert "erin" not in metrics  # no per-person labels


def test_without_the_store_keys_are_refused_not_waved_through(platform):
    redis, env, first, _ = platform
    key = create_key(env, "user:accounts.example.com:frank-0006", "ci")
    redis.stop()
    try:
        answer = httpx.get(first.url + "/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=10)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "store_unavailable"
        down = operator(env, "keys", "list")
        assert down.returncode == 2 and "does not answer" in down.stderr
    finally:
        redis.start()


def test_the_operator_command_refuses_bad_input_with_the_fix_and_no_secret(tmp_path):
    env = base_env("redis://127.0.0.1:1/0")
    bad = operator({**env, "CHAT_API_REDIS_URL": "http://:hunter2@redis:6379"}, "keys", "list")
    assert bad.returncode == 2 and "CHAT_API_REDIS_URL" in bad.stderr and "hunter2" not in bad.stderr
    unset = operator({k: v for k, v in env.items() if k != "CHAT_API_REDIS_URL"}, "usage")
    assert unset.returncode == 2 and "set CHAT_API_REDIS_URL" in unset.stderr
    with redis_server(tmp_path) as redis:
        env = base_env(redis.url)
        name = operator(
            env, "keys", "create", "--owner", OWNER_A, "--email", "a@example.com", "--name", "a b"
        )
        assert name.returncode == 2 and "key name 'a b' is not allowed" in name.stderr
        create_key(env, OWNER_A, "laptop", "--expires-in-days", "7")
        listed = json.loads(operator(env, "keys", "list", "--json").stdout)
        assert [(k["name"], k["expired"]) for k in listed] == [("laptop", False)] and listed[0]["expires"]
        again = operator(
            env, "keys", "create", "--owner", OWNER_A, "--email", "a@example.com", "--name", "laptop"
        )
        assert again.returncode == 2 and "already has a key named 'laptop'" in again.stderr
        gone = operator(env, "keys", "revoke", "--owner", OWNER_A, "--name", "desktop")
        assert gone.returncode == 2 and "no key named 'desktop'" in gone.stderr


# --- /api/keys: a signed-in person's own keys ---------------------------------------------------


@pytest.fixture
def stack_with_store(tmp_path) -> Iterator[Stack]:
    with redis_server(tmp_path) as redis, Stack(redis_url=redis.url) as stack:
        yield stack


def signed_in_as(monkeypatch, principal) -> None:
    """A double of helper 15a's OIDC session (not on this branch): whoever calls is `principal`,
    resolved the way `identify` resolves a session cookie (kind person, via session)."""
    from chat_api.routes import keys as keys_routes

    real = keys_routes.identify

    async def identify(services, request, rate=True):
        if request.headers.get("cookie") == "session=test":
            return principal
        return await real(services, request, rate)

    monkeypatch.setattr(keys_routes, "identify", identify)


def test_a_signed_in_person_creates_lists_and_revokes_their_own_keys(stack_with_store, monkeypatch):
    from chat_api.identity import Principal

    stack = stack_with_store
    alice = Principal(id=OWNER_A, kind="person", via="session", email="alice@example.com")
    signed_in_as(monkeypatch, alice)
    cookie = {"cookie": "session=test"}
    created = stack.post("/api/keys", {"name": "laptop", "expires_in_days": 30}, headers=cookie)
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    key = created.json()["key"]
    assert created.json()["owner"] == OWNER_A and created.json()["email"] == "alice@example.com"
    bearer = {"authorization": f"Bearer {key}"}
    assert httpx.get(stack.url + "/v1/models", headers=bearer).status_code == 200
    assert stack.post("/v1/chat/completions", chat_body(), headers=bearer).status_code == 200

    listed = httpx.get(stack.url + "/api/keys", headers=cookie)
    assert [k["name"] for k in listed.json()["data"]] == ["laptop"] and key not in listed.text
    # A key cannot manage keys, its own or others'.
    refused = httpx.get(stack.url + "/api/keys", headers=bearer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sign_in_required"
    assert httpx.delete(stack.url + "/api/keys/laptop", headers=bearer).status_code == 403
    assert httpx.get(stack.url + "/api/keys").status_code == 403  # anonymous

    bad = stack.post("/api/keys", {"name": "x", "expires_in_days": 0}, headers=cookie)
    assert bad.status_code == 400 and "expires_in_days" in bad.json()["error"]["message"]
    taken = stack.post("/api/keys", {"name": "laptop"}, headers=cookie)
    assert taken.status_code == 409

    assert httpx.delete(stack.url + "/api/keys/laptop", headers=cookie).status_code == 204
    assert httpx.get(stack.url + "/v1/models", headers=bearer).status_code == 401
    malformed = httpx.get(stack.url + "/v1/models", headers={"authorization": "Bearer llp_short"})
    assert malformed.status_code == 401 and "malformed" in malformed.json()["error"]["message"]
    assert httpx.delete(stack.url + "/api/keys/laptop", headers=cookie).status_code == 404


def test_keys_routes_say_they_need_the_store_when_there_is_none():
    with Stack() as stack:
        answer = httpx.get(stack.url + "/api/keys")
    assert answer.status_code == 404 and "CHAT_API_REDIS_URL" in answer.json()["error"]["message"]
