"""The shared store: one Redis that every chat-api replica reads and writes.

Why a store at all: per-person API keys must be created and revoked without a restart and be
refused at once on every replica, and per-person limits must hold however many replicas the
HPA runs. Per-replica memory can do neither (N replicas would give each person N times the
limit, and a revoked key would live on in the others' caches), so both live in Redis, and
nothing about them is cached in the process: every request reads the key record and counts
against the same counters.

Layout (every name starts with `llp:`; the limits library keeps its counters under `LIMITS:`):
- `llp:key:<sha256 of the key>`  hash: name, owner, email, created, expires, hint. Only the
  hash of a key is stored; the key itself is shown once, when it is created.
- `llp:owner:<principal id>`     hash: key name -> sha256, so names are unique per person and
  a person can list and revoke their own keys.
- `llp:usage:<YYYY-MM-DD>`        hash: "<principal id>|<field>" -> count, kept
  CHAT_API_USAGE_RETENTION_DAYS; what `python -m chat_api usage` prints.

Creating and revoking are Lua scripts, so a key record and its owner's index change together.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat_api.config import Settings
from chat_api.errors import ApiError, InvalidRequest, Unauthorized
from chat_api.identity import Principal

log = logging.getLogger("chat_api.store")
KEY_PREFIX = "llp_"
# 32 random bytes, URL-safe base64 without padding: 43 characters.
KEY_PATTERN = re.compile(r"llp_[A-Za-z0-9_-]{43}")
KEY_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
OWNER_PATTERN = re.compile(r"[^\s|]{1,256}")
EMAIL_PATTERN = re.compile(r"[^@\s]{1,128}@[^@\s]{1,253}")
USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "refused")

CREATE_KEY = """
-- KEYS[1] owner index, KEYS[2] key record; ARGV: name, sha, then the record's field/value pairs,
-- the last one the expiry in ms since the epoch (0: none)
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local fields = {}
for i = 3, #ARGV - 1 do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
local expires_ms = tonumber(ARGV[#ARGV])
if expires_ms > 0 then
  redis.call('PEXPIREAT', KEYS[2], expires_ms)
end
return 1
"""

REVOKE_KEY = """
-- KEYS[1] owner index; ARGV[1] key name, ARGV[2] the key-record prefix
local sha = redis.call('HGET', KEYS[1], ARGV[1])
if not sha then
  return 0
end
redis.call('DEL', ARGV[2] .. sha)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


class StoreUnavailable(ApiError):
    """Redis does not answer: refused (fail closed), since neither a key nor a limit can be checked."""

    status = 503
    code = "store_unavailable"
    event_code = "upstream_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "the shared store (Redis, CHAT_API_REDIS_URL) does not answer, so keys and limits cannot "
            "be checked; retry later",
            headers={"Retry-After": "5"},
        )


class KeyNameTaken(InvalidRequest):
    status = 409
    code = "key_name_taken"


class KeyNotFound(InvalidRequest):
    status = 404
    code = "key_not_found"


def key_digest(key: str) -> str:
    """sha256 of a key: enough for a 256-bit random secret (no salt or slow hash needed, since
    nobody can guess the input), and the lookup is by digest, so no comparison leaks timing."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_person_key(presented: str) -> bool:
    return presented.startswith(KEY_PREFIX)


def check_key_name(name: str) -> str:
    if not KEY_NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            f"key name {name[:80]!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def check_owner(owner: str, email: str) -> None:
    if not OWNER_PATTERN.fullmatch(owner):
        raise InvalidRequest(
            f"owner {owner[:80]!r} is not a principal id: no spaces or '|', at most 256 characters "
            "(a signed-in person's id is user:<issuer host>:<subject>)",
            param="owner",
        )
    if not EMAIL_PATTERN.fullmatch(email):
        raise InvalidRequest(f"owner e-mail {email[:80]!r} is not an e-mail address", param="email")


def iso(ts: float | None) -> str:
    return "" if not ts else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never the key, only the first characters after the prefix as a hint."""

    name: str
    owner: str
    email: str
    created: float
    expires: float | None
    hint: str

    def public(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "email": self.email,
            "created": iso(self.created),
            "expires": iso(self.expires) or None,
            "expired": self.expires is not None and now >= self.expires,
            "hint": self.hint,
        }

    @classmethod
    def from_record(cls, record: dict[str, str]) -> KeyInfo:
        expires = float(record.get("expires") or 0)
        return cls(
            name=record["name"],
            owner=record["owner"],
            email=record.get("email", ""),
            created=float(record["created"]),
            expires=expires or None,
            hint=record.get("hint", ""),
        )


def client_options(settings: Settings) -> dict[str, Any]:
    """redis-py options for every connection to the store (ours and the limits library's).

    Connection errors are retried twice, quickly: after a Redis restart the pooled connections
    are dead and the first command on each would fail. redis-py 8.1's default retry does not
    cover that case unless `retry_on_error` names the errors. A store that stays down costs a
    request at most about 3 x CHAT_API_REDIS_TIMEOUT_S before its 503."""
    return {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 30,
    }


def connect(settings: Settings) -> aioredis.Redis:
    assert settings.redis_url is not None
    return aioredis.Redis.from_url(
        settings.redis_url.get_secret_value(), decode_responses=True, **client_options(settings)
    )


class PersonKeys:
    """Per-person API keys in Redis. Every lookup reads the store: a revoked key is refused by
    every replica on its next request."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._create = client.register_script(CREATE_KEY)
        self._revoke = client.register_script(REVOKE_KEY)

    async def resolve(self, presented: str, now: float) -> Principal:
        if not KEY_PATTERN.fullmatch(presented):
            raise Unauthorized("malformed API key: a person's key is llp_ and 43 more characters")
        try:
            record = await self.client.hgetall(f"llp:key:{key_digest(presented)}")
        except RedisError:
            raise StoreUnavailable() from None
        if not record:
            raise Unauthorized("unknown or revoked API key; create a new one (/api/keys)")
        info = KeyInfo.from_record(record)
        if info.expires is not None and now >= info.expires:
            # Redis drops the record at its expiry too; this covers the moment in between.
            raise Unauthorized(f"API key {info.name!r} expired at {iso(info.expires)}; create a new one")
        return Principal(id=info.owner, kind="person", via="key", email=info.email, key_name=info.name)

    async def create(
        self, owner: str, email: str, name: str, now: float, expires: float | None = None
    ) -> tuple[str, KeyInfo]:
        """(the key, shown once; its info). Raises KeyNameTaken when the owner has that name."""
        check_owner(owner, email)
        check_key_name(name)
        if expires is not None and expires <= now:
            raise InvalidRequest(f"expiry {iso(expires)} is in the past; give a later time", param="expires")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        sha = key_digest(key)
        info = KeyInfo(name=name, owner=owner, email=email, created=now, expires=expires, hint=key[:8])
        fields = {
            "name": name,
            "owner": owner,
            "email": email,
            "created": repr(now),
            "expires": repr(expires) if expires else "",
            "hint": info.hint,
        }
        args = [name, sha, *(x for kv in fields.items() for x in kv), int((expires or 0) * 1000)]
        try:
            created = await self._create(keys=[f"llp:owner:{owner}", f"llp:key:{sha}"], args=args)
        except RedisError:
            raise StoreUnavailable() from None
        if not created:
            raise KeyNameTaken(
                f"{owner} already has a key named {name!r}; revoke it first or choose another name",
                param="name",
            )
        return key, info

    async def list(self, owner: str | None = None) -> list[KeyInfo]:
        """The owner's keys, or everyone's (operator). Entries whose record expired are dropped."""
        try:
            if owner is not None:
                owners = [f"llp:owner:{owner}"]
            else:
                owners = [o async for o in self.client.scan_iter(match="llp:owner:*", count=500)]
            out = []
            for index in owners:
                names = await self.client.hgetall(index)
                for name, sha in sorted(names.items()):
                    record = await self.client.hgetall(f"llp:key:{sha}")
                    if record:
                        out.append(KeyInfo.from_record(record))
                    else:  # expired in Redis: forget the name too
                        await self.client.hdel(index, name)
        except RedisError:
            raise StoreUnavailable() from None
        return out

    async def revoke(self, owner: str, name: str) -> None:
        try:
            done = await self._revoke(keys=[f"llp:owner:{owner}"], args=[name, "llp:key:"])
        except RedisError:
            raise StoreUnavailable() from None
        if not done:
            raise KeyNotFound(f"{owner} has no key named {name[:80]!r}", param="name")


def usage_key(ts: float) -> str:
    return "llp:usage:" + datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


async def record_usage(
    client: aioredis.Redis, principal_id: str, now: float, retention_s: int, **counts: int
) -> None:
    key = usage_key(now)
    async with client.pipeline(transaction=False) as pipe:
        for field, value in counts.items():
            if value:
                pipe.hincrby(key, f"{principal_id}|{field}", value)
        pipe.expire(key, retention_s)
        await pipe.execute()


async def count_usage(
    client: aioredis.Redis | None, principal_id: str, retention_days: int, **counts: int
) -> None:
    """Per-person usage for the operator (`python -m chat_api usage`); best effort: a store
    hiccup here must not fail an answer that was already given. No store: nothing to do."""
    if client is None:
        return
    try:
        await record_usage(client, principal_id, time.time(), retention_days * 86400, **counts)
    except RedisError:
        log.warning("could not record usage: the store does not answer")


async def read_usage(client: aioredis.Redis, day: str) -> dict[str, dict[str, int]]:
    """{principal id: {requests, prompt_tokens, completion_tokens, refused}} for one UTC day."""
    raw = await client.hgetall(f"llp:usage:{day}")
    out: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        principal, _, name = field.rpartition("|")
        out.setdefault(principal, dict.fromkeys(USAGE_FIELDS, 0))[name] = int(value)
    return out
