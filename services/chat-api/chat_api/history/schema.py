"""What a stored conversation is: the UI's own shape (ui/src/lib/store.ts `Conversation`), validated.

The UI keeps conversations in localStorage under `llama-chat.v1` as `{conversations, activeId}`;
the server stores the same documents per person, so a browser's history imports unchanged and an
export (JSON) imports back. Unknown fields are refused with the field's name, so a typo or a newer
UI field is a clear 400 rather than data silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ConversationId = Annotated[str, Field(pattern=ID_PATTERN)]
Status = Literal["complete", "streaming", "stopped", "interrupted", "failed"]
MAX_TITLE_CHARS = 200
MAX_VARIANTS = 64


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerVariant(Strict):
    content: str
    status: Status = "complete"
    # What the UI measured and how it explains a failure: small objects it alone reads.
    stats: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None
    droppedForContext: int | None = Field(None, ge=0)


class StoredMessage(AnswerVariant):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    role: Literal["user", "assistant"]
    variants: Annotated[list[AnswerVariant], Field(max_length=MAX_VARIANTS)] | None = None
    variant: int | None = Field(None, ge=0)


class ConversationSettings(Strict):
    systemPrompt: str = ""
    temperature: float = Field(0.7, ge=0, le=2)
    maxTokens: int = Field(512, ge=1, le=1_048_576)
    model: Annotated[str, Field(max_length=256)] = ""


class ConversationBody(Strict):
    """PUT /api/conversations/{id}: the whole conversation (the id is the path's; one in the body
    must be the same)."""

    id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    title: Annotated[str, Field(max_length=MAX_TITLE_CHARS)] = "New conversation"
    createdAt: int = Field(0, ge=0, description="ms since the epoch, as the UI keeps it")
    updatedAt: int = Field(0, ge=0)
    settings: ConversationSettings = Field(default_factory=ConversationSettings)
    messages: list[StoredMessage] = Field(default_factory=list)


class Conversation(ConversationBody):
    id: ConversationId


class ImportBody(BaseModel):
    """What the browser holds (`llama-chat.v1`) or an export in JSON: `conversations` is what counts."""

    model_config = ConfigDict(extra="ignore")  # activeId, version, exportedAt: not stored

    conversations: list[Conversation]


def search_text(conversation: ConversationBody) -> str:
    """Title and every text (shown answers and their variants), lower-cased, for substring search."""
    parts = [conversation.title]
    for message in conversation.messages:
        parts.append(message.content)
        parts.extend(v.content for v in message.variants or ())
    return "\n".join(parts).lower()
