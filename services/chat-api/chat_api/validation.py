"""Request validation: the limits chat-api owns (size, counts, max_tokens cap, allowed models).

Everything else (sampling parameters, roles, templates) is vLLM's to judge; its 400s pass through
with its own message. Every message here names the field, the value and the limit.
"""

from __future__ import annotations

import json
from typing import Any

from chat_api.config import Settings
from chat_api.errors import InvalidRequest, ModelNotAllowed, PayloadTooLarge

ROLES = ("system", "user", "assistant", "tool", "developer")


def parse_json_body(raw: bytes, settings: Settings) -> dict[str, Any]:
    if len(raw) > settings.max_body_bytes:
        raise PayloadTooLarge(
            f"request body is {len(raw)} bytes; the limit is {settings.max_body_bytes} bytes"
        )
    if not raw:
        raise InvalidRequest("request body is empty; send a JSON object with `messages`")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {type(body).__name__}")
    return body


def _content_chars(content: Any, index: int) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                raise InvalidRequest(
                    f'messages[{index}].content parts must be objects like {{"type": "text", "text": "..."}}',
                    param=f"messages[{index}].content",
                )
            text = part.get("text")
            if isinstance(text, str):
                total += len(text)
        return total
    raise InvalidRequest(
        f"messages[{index}].content must be a string or a list of parts, not {type(content).__name__}",
        param=f"messages[{index}].content",
    )


def check_messages(messages: Any, settings: Settings) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "`messages` must be a non-empty list of {role, content} objects", param="messages"
        )
    if len(messages) > settings.max_messages:
        raise InvalidRequest(
            f"`messages` has {len(messages)} entries; the limit is {settings.max_messages}", param="messages"
        )
    total = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(
                f"messages[{index}] must be an object with role and content", param="messages"
            )
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"messages[{index}].role is {role!r}; use one of {', '.join(ROLES)}",
                param=f"messages[{index}].role",
            )
        total += _content_chars(message.get("content"), index)
    if total > settings.max_content_chars:
        raise InvalidRequest(
            f"the messages hold {total} characters of content; the limit is {settings.max_content_chars}",
            param="messages",
        )


def check_max_tokens(value: Any, settings: Settings, field: str = "max_tokens") -> int:
    if value is None:
        return settings.default_max_tokens
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"`{field}` must be an integer, not {value!r}", param=field)
    if value < 1:
        raise InvalidRequest(f"`{field}` is {value}; it must be at least 1", param=field)
    if value > settings.max_tokens_cap:
        raise InvalidRequest(
            f"`{field}` is {value}; the limit is {settings.max_tokens_cap}",
            param=field,
            code="max_tokens_too_large",
        )
    return value


def check_model(model: Any, settings: Settings) -> str | None:
    if model is None or model == "":
        return settings.default_model or None
    if not isinstance(model, str):
        raise InvalidRequest(f"`model` must be a string, not {model!r}", param="model")
    if settings.allowed_models and model not in settings.allowed_models:
        raise ModelNotAllowed(
            f"model {model!r} is not offered here; use one of: {', '.join(settings.allowed_models)}",
            param="model",
        )
    return model


def normalize_completion_request(body: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], bool]:
    """Check an OpenAI chat-completion body; returns (body to forward, whether it streams)."""
    check_messages(body.get("messages"), settings)
    model = check_model(body.get("model"), settings)
    if model is not None:
        body["model"] = model
    if body.get("max_completion_tokens") is not None:
        body["max_completion_tokens"] = check_max_tokens(
            body["max_completion_tokens"], settings, "max_completion_tokens"
        )
        if body.get("max_tokens") is not None:
            body["max_tokens"] = check_max_tokens(body["max_tokens"], settings)
    else:
        body["max_tokens"] = check_max_tokens(body.get("max_tokens"), settings)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest(f"`stream` must be true or false, not {stream!r}", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("`stream_options` must be an object", param="stream_options")
    n = body.get("n", 1)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > 8):
        raise InvalidRequest(f"`n` is {n!r}; it must be an integer from 1 to 8", param="n")
    return body, stream
