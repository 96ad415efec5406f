"""The request contract, built once from the settings: the same pydantic models validate bodies,
fill the OpenAPI schema (what tools and fuzzers read) and define what reaches vLLM.

An allowlist: a field chat-api does not know is refused with its name (vLLM's extensions such as
`ignore_eos`, `min_tokens`, `prompt_logprobs`, `structured_outputs`, `chat_template` or
`request_id` change what a request costs, or reach its internals). Bounds that one field cannot
express (n x max_tokens, characters over all messages) are model validators with the same
settings, and are described in the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from chat_api.config import Settings
from chat_api.errors import InvalidRequest, ModelNotAllowed

MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
MAX_CONTENT_PARTS = 64
MAX_MODEL_CHARS = 256


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: str


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool | None = None


@dataclass(frozen=True)
class Contract:
    """The two request models of one app (settings are fixed for the app's life)."""

    completion: type[BaseModel]
    ui_chat: type[BaseModel]
    settings: Settings

    def parse(self, model: type[BaseModel], raw: bytes) -> BaseModel:
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidRequest(describe(exc)) from None

    def check_model_name(self, name: str | None) -> str | None:
        s = self.settings
        if not name:
            return s.default_model or None
        if s.allowed_models and name not in s.allowed_models:
            raise ModelNotAllowed(
                f"model {name!r} is not offered here; use one of: {', '.join(s.allowed_models)}",
                param="model",
            )
        return name


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        message = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            message = "is not accepted here (chat-api forwards only the fields its OpenAPI schema lists)"
        elif err.get("type") == "json_invalid":
            message = "request body is not valid JSON (or is nested too deeply)"
        parts.append(f"{where}: {message}")
    return "invalid request: " + "; ".join(parts)


def _total_chars(messages: list[Any]) -> int:
    total = 0
    for m in messages:
        if isinstance(m.content, str):
            total += len(m.content)
        else:
            total += sum(len(p.text) for p in m.content)
    return total


def build_contract(s: Settings) -> Contract:
    content_str = Annotated[str, Field(max_length=s.max_content_chars)]
    content_parts = Annotated[list[TextPart], Field(min_length=1, max_length=MAX_CONTENT_PARTS)]
    tokens = Annotated[int, Field(ge=1, le=s.max_tokens_cap)]
    ui_message = create_model(
        "UiMessage",
        __config__=ConfigDict(extra="forbid", strict=True),
        role=(Literal["system", "user", "assistant"], ...),
        content=(content_str, ...),
    )
    message = create_model(
        "Message",
        __config__=ConfigDict(extra="forbid", strict=True),
        role=(Literal["system", "user", "assistant"], ...),
        content=(content_str | content_parts, ...),
        name=(Annotated[str, Field(max_length=64)] | None, None),
    )
    messages_of = lambda m: Annotated[list[m], Field(min_length=1, max_length=s.max_messages)]  # noqa: E731
    limits_note = (
        f"Also: the characters of all messages together are at most {s.max_content_chars}; "
        f"n x max_tokens is at most {s.max_tokens_cap}; the body is at most {s.max_body_bytes} bytes."
    )

    def check_totals(self: Any) -> Any:
        total = _total_chars(self.messages)
        if total > s.max_content_chars:
            raise ValueError(
                f"the messages hold {total} characters of content; the limit is {s.max_content_chars}"
            )
        n = getattr(self, "n", None) or 1
        budget = getattr(self, "max_completion_tokens", None) or self.max_tokens or s.default_max_tokens
        if n * budget > s.max_tokens_cap:
            raise ValueError(
                f"n x max_tokens is {n} x {budget} = {n * budget}; the limit is {s.max_tokens_cap} "
                "(CHAT_API_MAX_TOKENS_CAP)"
            )
        if getattr(self, "top_logprobs", None) and not getattr(self, "logprobs", False):
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    validators = {"check_totals": model_validator(mode="after")(check_totals)}
    common: dict[str, Any] = {
        "model": (Annotated[str, Field(max_length=MAX_MODEL_CHARS)] | None, None),
        "max_tokens": (tokens | None, None),
        "temperature": (Annotated[float, Field(ge=0, le=2)] | None, None),
        "top_p": (Annotated[float, Field(gt=0, le=1)] | None, None),
    }
    completion = create_model(
        "ChatCompletionRequest",
        __config__=ConfigDict(extra="forbid", strict=True, json_schema_extra={"description": limits_note}),
        __validators__=validators,
        messages=(messages_of(message), ...),
        **common,
        max_completion_tokens=(tokens | None, None),
        n=(Annotated[int, Field(ge=1, le=s.max_n)] | None, None),
        stream=(bool, False),
        stream_options=(StreamOptions | None, None),
        stop=(
            Annotated[str, Field(max_length=MAX_STOP_CHARS)]
            | Annotated[
                list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]], Field(max_length=MAX_STOP_SEQUENCES)
            ]
            | None,
            None,
        ),
        seed=(Annotated[int, Field(ge=0, le=2**31 - 1)] | None, None),
        presence_penalty=(Annotated[float, Field(ge=-2, le=2)] | None, None),
        frequency_penalty=(Annotated[float, Field(ge=-2, le=2)] | None, None),
        logprobs=(bool | None, None),
        top_logprobs=(Annotated[int, Field(ge=0, le=s.max_top_logprobs)] | None, None),
        user=(Annotated[str, Field(max_length=256)] | None, None),
    )
    ui_chat = create_model(
        "UiChatRequest",
        __config__=ConfigDict(extra="forbid", strict=True, json_schema_extra={"description": limits_note}),
        __validators__=validators,
        messages=(messages_of(ui_message), ...),
        **common,
    )
    return Contract(completion=completion, ui_chat=ui_chat, settings=s)


def upstream_body(contract: Contract, req: BaseModel, model: str | None, stream: bool) -> dict[str, Any]:
    """What goes to vLLM: the validated fields only (never `user`), usage always asked for."""
    body = req.model_dump(exclude_none=True, exclude={"user", "stream", "stream_options"})
    if model:
        body["model"] = model
    if not body.get("max_tokens") and not body.get("max_completion_tokens"):
        body["max_tokens"] = contract.settings.default_max_tokens
    body["stream"] = stream
    if stream:
        # Token counts come from vLLM's final usage chunk, so no other chunk is parsed.
        body["stream_options"] = {"include_usage": True}
    return body


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The request body for the OpenAPI document, $defs inlined under components by the caller."""
    return model.model_json_schema(ref_template="#/components/schemas/{model}")
