"""Operator commands against the shared store, without signing in (run them in a chat-api pod:
`kubectl exec deploy/<release>-chat-api -- python -m chat_api keys list`):

    python -m chat_api keys create --owner ID --email ADDRESS --name NAME [--expires-in-days N]
    python -m chat_api keys list [--owner ID] [--json]
    python -m chat_api keys revoke --owner ID (--name NAME | --all)
    python -m chat_api usage [--day YYYY-MM-DD] [--json]

The store comes from CHAT_API_REDIS_URL, as for the server. A created key is printed once, on
stdout, and nowhere else; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from chat_api.config import Settings, unknown_settings
from chat_api.errors import ApiError
from chat_api.store import PersonKeys, StoreUnavailable, connect, iso, read_usage

COMMANDS = ("keys", "usage")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chat_api", description="chat-api operator commands")
    sub = p.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="per-person API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key for a person; prints the key once")
    create.add_argument("--owner", required=True, help="the person's principal id: user:<issuer host>:<sub>")
    create.add_argument("--email", required=True, help="the person's e-mail address")
    create.add_argument("--name", required=True, help="a name for the key (letters, digits, . _ -)")
    create.add_argument("--expires-in-days", type=float, default=None, help="default: does not expire")
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--owner", default=None, help="only this person's keys")
    listing.add_argument("--json", action="store_true")
    revoke = keys.add_parser("revoke", help="revoke a key; refused at once on every replica")
    revoke.add_argument("--owner", required=True)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--name")
    which.add_argument("--all", action="store_true", help="every key of the owner (someone leaving)")
    sub.add_parser(
        "migrate",
        help="bring the conversation database to the newest schema and exit (what start-up does unless "
        "CHAT_API_DATABASE_MIGRATE=off; safe from several replicas at once)",
    )
    usage = sub.add_parser("usage", help="requests and tokens per person for one UTC day")
    usage.add_argument("--day", default=None, help="YYYY-MM-DD (UTC); default: today")
    usage.add_argument("--json", action="store_true")
    return p


def fail(message: str) -> int:
    print(f"chat-api: {message}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if problems := unknown_settings(os.environ):
        return fail("; ".join(problems))
    try:
        settings = Settings()
    except ValidationError as exc:
        return fail(settings_errors(exc))
    if args.command == "migrate":
        return migrate_command(settings)
    if settings.redis_url is None:
        return fail(
            "these commands work on the shared store: set CHAT_API_REDIS_URL (in a chat-api pod it is set "
            "from the chart's Secret)"
        )
    try:
        return asyncio.run(run(args, settings))
    except (StoreUnavailable, RedisError, OSError):
        return fail("the shared store (CHAT_API_REDIS_URL) does not answer; check that Redis runs")
    except ApiError as exc:
        return fail(exc.message)


def migrate_command(settings: Settings) -> int:
    if not settings.database_url:
        return fail("CHAT_API_DATABASE_URL is empty: there is no database to migrate")
    from chat_api.app import open_history
    from chat_api.history.migrate import migrate

    async def run() -> tuple[str | None, str | None]:
        history = open_history(settings)
        try:
            return await migrate(history.engine)
        finally:
            await history.close()

    try:
        before, after = asyncio.run(run())
    except Exception as exc:  # any failure: its type only (a message may hold the URL's password)
        print(f"chat-api: migrating the conversation database failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"chat-api: conversation database at revision {after} (was {before or 'empty'})")
    return 0


def settings_errors(exc: ValidationError) -> str:
    """Each bad setting and why, without its value (CHAT_API_REDIS_URL may hold a password)."""
    lines = [
        f"  CHAT_API_{'_'.join(str(x) for x in e['loc']).upper()}: {e['msg']}"
        if e["loc"]
        else f"  {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    ]
    return "invalid settings:\n" + "\n".join(lines)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    client = connect(settings)
    try:
        if args.command == "keys":
            return await keys_command(args, PersonKeys(client))
        return await usage_command(args, client)
    finally:
        await client.aclose()


async def keys_command(args: argparse.Namespace, keys: PersonKeys) -> int:
    now = time.time()
    if args.action == "create":
        days = args.expires_in_days
        if days is not None and days <= 0:
            return fail(f"--expires-in-days {days:g} must be above 0 (leave it out for no expiry)")
        expires = now + days * 86400 if days is not None else None
        key, info = await keys.create(args.owner, args.email, args.name, now, expires)
        print(key)
        print(
            f"created key {info.name!r} for {info.owner} <{info.email}>, expires "
            f"{iso(info.expires) or 'never'}; this is the only time the key is shown",
            file=sys.stderr,
        )
        return 0
    if args.action == "list":
        listed = [k.public(now) for k in await keys.list(args.owner)]
        if args.json:
            print(json.dumps(listed, indent=2))
        else:
            table(listed, ("owner", "email", "name", "hint", "created", "expires", "expired"))
        return 0
    names = [args.name] if args.name else [k.name for k in await keys.list(args.owner)]
    if not names:
        return fail(f"{args.owner} has no keys")
    for name in names:
        await keys.revoke(args.owner, name)
        print(f"revoked key {name!r} of {args.owner}", file=sys.stderr)
    return 0


async def usage_command(args: argparse.Namespace, client: Any) -> int:
    day = args.day or datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        return fail(f"--day {day!r} is not a date: use YYYY-MM-DD (UTC)")
    usage = await read_usage(client, day)
    rows = [
        {"principal": who, **counts, "tokens": counts["prompt_tokens"] + counts["completion_tokens"]}
        for who, counts in usage.items()
    ]
    rows.sort(key=lambda row: (-row["tokens"], row["principal"]))
    if args.json:
        print(json.dumps({"day": day, "usage": rows}, indent=2))
    else:
        print(f"usage on {day} (UTC)")
        table(rows, ("principal", "requests", "prompt_tokens", "completion_tokens", "tokens", "refused"))
    return 0


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
