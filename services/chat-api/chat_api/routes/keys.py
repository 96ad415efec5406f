"""A signed-in person's own API keys: POST/GET /api/keys, DELETE /api/keys/{name}.

Only a sign-in session may manage keys: a key cannot mint or revoke keys (a leaked key must not
be able to make itself a successor). Creating answers the key once (`Cache-Control: no-store`);
the store keeps only its sha256 (chat_api.store). Operators manage anyone's keys without
signing in: `python -m chat_api keys create|list|revoke`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from chat_api.context import Services
from chat_api.errors import ApiError, InvalidRequest
from chat_api.identity import Principal
from chat_api.routes.common import identify, read_json_body, services_of
from chat_api.routes.openai import ERROR_RESPONSES
from chat_api.store import KEY_NAME_PATTERN, PersonKeys, check_key_name

router = APIRouter()
KEYS_ROUTE = "/api/keys"
MAX_EXPIRY_DAYS = 366
NO_STORE = {"Cache-Control": "no-store"}


class KeyCreate(BaseModel):
    """The body of POST /api/keys (documentation; the route parses it itself, after sign-in)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=f"^{KEY_NAME_PATTERN.pattern}$", examples=["laptop"])
    expires_in_days: float | None = Field(
        None, gt=0, le=MAX_EXPIRY_DAYS, description="left out: the key does not expire"
    )


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        400: "invalid name or expiry (the message names the field)",
        401: "missing or invalid credentials",
        403: "not a sign-in session (a key cannot manage keys)",
        404: "no such key, or no shared store configured (CHAT_API_REDIS_URL)",
        408: "the body did not arrive in time",
        409: "the person already has a key with that name",
        413: "request body too large",
        415: "the body is not application/json",
        429: "over the person's request limit; see Retry-After",
        503: "the shared store does not answer",
    }
    content = ERROR_RESPONSES[400]["content"]  # the OpenAI error shape
    return {status: {"description": texts[status], "content": content} for status in statuses}


class SignInRequired(ApiError):
    status = 403
    type = "permission_error"
    code = "sign_in_required"


class KeysNeedStore(ApiError):
    # 404, not 501: the routes are there, the feature is not configured (and not a server fault).
    status = 404
    type = "invalid_request_error"
    code = "keys_need_store"

    def __init__(self) -> None:
        super().__init__(
            "per-person API keys need the shared store: set CHAT_API_REDIS_URL (see the chat-api README)"
        )


async def signed_in_person(services: Services, request: Request) -> tuple[Principal, PersonKeys]:
    """The person signed in with a session (not a key); the request counts against their rate."""
    if services.person_keys is None:
        raise KeysNeedStore()
    principal = await identify(services, request)
    if principal.kind != "person" or principal.via != "session":
        raise SignInRequired(
            "managing API keys needs a sign-in session in the browser; an API key cannot create or "
            "revoke keys (an operator can: python -m chat_api keys)"
        )
    return principal, services.person_keys


def parse_create(raw: bytes, now: float) -> tuple[str, float | None]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest('the body is not JSON; send {"name": ..., "expires_in_days": ...}') from None
    if not isinstance(body, dict) or set(body) - {"name", "expires_in_days"}:
        raise InvalidRequest('send a JSON object with "name" and, optionally, "expires_in_days"')
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidRequest('"name" is required: a name for the key, such as "laptop" or "ci"', param="name")
    check_key_name(name)
    days = body.get("expires_in_days")
    if days is None:
        return name, None
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= MAX_EXPIRY_DAYS:
        raise InvalidRequest(
            f'"expires_in_days" must be a number of days above 0 and at most {MAX_EXPIRY_DAYS}, or left out '
            "for a key that does not expire",
            param="expires_in_days",
        )
    return name, now + float(days) * 86400


@router.post(
    KEYS_ROUTE,
    status_code=201,
    summary="Create an API key for the signed-in person (the key is answered once)",
    responses=responses(400, 401, 403, 404, 408, 409, 413, 415, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": KeyCreate.model_json_schema()}},
        }
    },
)
async def create_key(request: Request) -> JSONResponse:
    services = services_of(request)
    person, keys = await signed_in_person(services, request)
    now = time.time()
    name, expires = parse_create(await read_json_body(request, services.settings), now)
    key, info = await keys.create(person.id, person.email, name, now, expires)
    request.scope["chat_api"].log["key_name"] = name
    return JSONResponse({"key": key, **info.public(now)}, status_code=201, headers=NO_STORE)


@router.get(
    KEYS_ROUTE,
    summary="The signed-in person's API keys (names, hints and expiry; never the keys)",
    responses=responses(401, 403, 404, 429, 503),
)
async def list_keys(request: Request) -> JSONResponse:
    services = services_of(request)
    person, keys = await signed_in_person(services, request)
    now = time.time()
    data: list[dict[str, Any]] = [k.public(now) for k in await keys.list(person.id)]
    return JSONResponse({"data": data}, headers=NO_STORE)


@router.delete(
    KEYS_ROUTE + "/{name}",
    status_code=204,
    summary="Revoke one of the signed-in person's keys",
    responses=responses(400, 401, 403, 404, 429, 503),
)
async def revoke_key(request: Request, name: str) -> Response:
    services = services_of(request)
    person, keys = await signed_in_person(services, request)
    await keys.revoke(person.id, check_key_name(name))
    request.scope["chat_api"].log["key_name"] = name
    return Response(status_code=204)
