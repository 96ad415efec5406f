"""Conversations stored on the server for a signed-in person (issue 19): /api/conversations.

    GET    /api/conversations?q=&limit=&offset=   summaries, newest first; q searches titles and text
    GET    /api/conversations/export?format=json|markdown   all of them, as a download
    POST   /api/conversations/import              what a browser holds in localStorage (idempotent)
    GET    /api/conversations/{id}                one conversation (the UI's shape)
    PUT    /api/conversations/{id}                create or replace it (409 when the stored copy is newer)
    DELETE /api/conversations/{id}
    GET    /api/conversations/{id}/export?format=json|markdown

Only a person (signed in, or their own API key) has server history: anonymous callers (`make up`)
and operator keys get 403 `history_needs_person`, and the UI keeps using localStorage.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from chat_api.context import Services
from chat_api.errors import ApiError, InvalidRequest, PayloadTooLarge, Rejected
from chat_api.history.schema import ID_PATTERN, ConversationBody, ImportBody
from chat_api.history.store import HistoryLimit, StaleCopy, Store
from chat_api.identity import Principal
from chat_api.routes.common import identify, read_json_body, services_of
from chat_api.routes.openai import ERROR_RESPONSES

_ERRORS = {
    400: "invalid conversation, id or parameter (the message names it)",
    401: "sign-in required, or the session expired",
    403: "not a signed-in person (anonymous, or an operator key): the browser keeps its conversations",
    404: "no such conversation, or this chat-api keeps none (CHAT_API_DATABASE_URL empty)",
    408: "the body did not arrive in time",
    409: "the stored copy is newer than the one sent (saved from another device)",
    413: "over a history limit (the message names the setting)",
    415: "the body is not application/json",
    429: "over the person's request limit; see Retry-After",
    503: "the conversation store or the shared store does not answer",
}
# Every route documents every error it may answer, in the OpenAI error shape (the fuzzer checks).
router = APIRouter(
    prefix="/api/conversations",
    tags=["conversations"],
    responses={
        status: {"description": text, "content": ERROR_RESPONSES[400]["content"]}
        for status, text in _ERRORS.items()
    },
)
ExportFormat = Literal["json", "markdown"]
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="the conversation's id (the UI makes it)")]


class HistoryForbidden(ApiError):
    status = 403
    type = "permission_error"
    code = "history_needs_person"


class HistoryUnavailable(ApiError):
    status = 503
    code = "history_unavailable"


class HistoryOff(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "history_off"


class ConversationChanged(ApiError):
    status = 409
    type = "invalid_request_error"
    code = "conversation_changed"


class ConversationNotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "conversation_not_found"


async def person(request: Request) -> tuple[Services, Store, Principal]:
    services = services_of(request)
    # Not the chat's rate bucket: the page asks here once per load (to pick its store) and saves
    # while answers stream; neither may use up what the person (or an anonymous page) may send.
    principal = await identify(services, request, rate=False)
    if principal.kind != "person":
        raise HistoryForbidden(
            "conversations are stored on the server only for a signed-in person; this request is "
            f"{'anonymous' if principal.kind == 'anonymous' else 'from a service key'}, so the browser "
            "keeps its conversations itself (localStorage)"
        )
    if not services.settings.database_url:
        raise HistoryOff(
            "this chat-api keeps no conversations (CHAT_API_DATABASE_URL is empty); "
            "the browser keeps them itself (localStorage)"
        )
    if services.history is None:
        raise HistoryUnavailable("the conversation store is not open (chat-api is starting or stopping)")
    if services.history_rate is not None:
        try:
            services.history_rate.check(principal.id)
        except Rejected:
            services.metrics.rejections.labels("rate_limit").inc()
            raise
    return services, services.history, principal


def parse(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors(include_url=False, include_input=False)[:5]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "body"
            message = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                message = "is not a field of a stored conversation (ui/src/lib/store.ts)"
            elif err.get("type") == "json_invalid":
                message = "request body is not valid JSON (or is nested too deeply)"
            parts.append(f"{where}: {message}")
        raise InvalidRequest("invalid conversation: " + "; ".join(parts)) from None


def too_large(exc: HistoryLimit) -> PayloadTooLarge:
    return PayloadTooLarge(str(exc), code="history_limit")


@router.get("", summary="The person's conversations, newest first; `q` searches titles and text")
async def list_conversations(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    _, store, who = await person(request)
    summaries, total = await store.list(who.id, q, limit, offset)
    return {"conversations": [s.__dict__ for s in summaries], "total": total}


@router.get("/export", summary="All of the person's conversations as one JSON or Markdown download")
async def export_all(request: Request, format: ExportFormat = "json") -> Response:
    _, store, who = await person(request)
    conversations = await store.all(who.id)
    stamp = time.strftime("%Y%m%d")
    if format == "json":
        body = {"version": 1, "exportedAt": int(time.time() * 1000), "conversations": conversations}
        return download(json.dumps(body, ensure_ascii=False, indent=1), f"conversations-{stamp}.json", format)
    text = "\n\n---\n\n".join(markdown(c) for c in conversations) or "_No conversations._\n"
    return download(text, f"conversations-{stamp}.md", format)


@router.post("/import", summary="Import what a browser holds (llama-chat.v1) or a JSON export; idempotent")
async def import_conversations(request: Request) -> dict[str, int]:
    services, store, who = await person(request)
    raw = await read_json_body(request, services.settings, services.settings.history_max_import_bytes)
    body: ImportBody = parse(ImportBody, raw)
    try:
        return await store.import_many(who.id, body.conversations)
    except HistoryLimit as exc:
        raise too_large(exc) from None


@router.get("/{conversation_id}", summary="One conversation, in the UI's shape")
async def get_conversation(request: Request, conversation_id: PathId) -> dict[str, Any]:
    _, store, who = await person(request)
    conversation = await store.get(who.id, conversation_id)
    if conversation is None:
        raise ConversationNotFound(f"no conversation {conversation_id} is stored for you")
    return conversation


@router.put("/{conversation_id}", summary="Create or replace a conversation")
async def put_conversation(request: Request, conversation_id: PathId) -> JSONResponse:
    services, store, who = await person(request)
    raw = await read_json_body(request, services.settings, services.settings.history_max_conversation_bytes)
    body: ConversationBody = parse(ConversationBody, raw)
    if body.id is not None and body.id != conversation_id:
        raise InvalidRequest(
            f"id: the body says {body.id!r} but the path says {conversation_id!r}; send the same id"
        )
    try:
        created = await store.put(who.id, conversation_id, body)
    except HistoryLimit as exc:
        raise too_large(exc) from None
    except StaleCopy as exc:
        raise ConversationChanged(str(exc)) from None
    return JSONResponse(
        {"id": conversation_id, "updatedAt": body.updatedAt}, status_code=201 if created else 200
    )


@router.delete("/{conversation_id}", status_code=204, summary="Delete a conversation")
async def delete_conversation(request: Request, conversation_id: PathId) -> Response:
    _, store, who = await person(request)
    if not await store.delete(who.id, conversation_id):
        raise ConversationNotFound(f"no conversation {conversation_id} is stored for you")
    return Response(status_code=204)


@router.get("/{conversation_id}/export", summary="One conversation as a JSON or Markdown download")
async def export_one(request: Request, conversation_id: PathId, format: ExportFormat = "json") -> Response:
    _, store, who = await person(request)
    conversation = await store.get(who.id, conversation_id)
    if conversation is None:
        raise ConversationNotFound(f"no conversation {conversation_id} is stored for you")
    name = slug(conversation.get("title", "")) or conversation_id
    if format == "json":
        return download(json.dumps(conversation, ensure_ascii=False, indent=1), f"{name}.json", format)
    return download(markdown(conversation), f"{name}.md", format)


def download(text: str, filename: str, format: ExportFormat) -> Response:
    media = "application/json" if format == "json" else "text/markdown; charset=utf-8"
    return Response(
        text.encode(),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"},
    )


def slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60]


def markdown(conversation: dict[str, Any]) -> str:
    """A conversation as Markdown: title, settings, then each turn under its speaker. Message text
    is the model's or the person's own Markdown, kept as it is."""
    settings = conversation.get("settings", {})
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(conversation.get("createdAt", 0) / 1000))
    lines = [
        f"# {conversation.get('title', '')}",
        "",
        f"_{created} · model: {settings.get('model') or 'default'}_",
        "",
    ]
    if settings.get("systemPrompt"):
        lines += [
            "**System prompt:**",
            "",
            *[f"> {line}" for line in settings["systemPrompt"].splitlines()],
            "",
        ]
    for message in conversation.get("messages", []):
        speaker = "You" if message["role"] == "user" else "Assistant"
        variants = message.get("variants") or []
        if len(variants) > 1:
            speaker += f" (answer {message.get('variant', len(variants) - 1) + 1} of {len(variants)})"
        lines += [f"## {speaker}", "", message.get("content", ""), ""]
    return "\n".join(lines)
