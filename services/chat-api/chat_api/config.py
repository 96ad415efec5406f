"""Settings: every knob is an environment variable `CHAT_API_<NAME>` with a safe default.

services/chat-api/README.md lists them; keep that table in step with this class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    # hide_input_in_errors: CHAT_API_DATABASE_URL may carry a password; an error names the
    # setting, never echoes its value.
    model_config = SettingsConfigDict(
        env_prefix="CHAT_API_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Serving
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all its interfaces; local runs pass 127.0.0.1
    port: int = Field(8080, ge=1, le=65535)
    drain_timeout_s: float = Field(30.0, ge=0, description="on SIGTERM, how long open streams may finish")

    # Upstream vLLM
    upstream_url: str = "http://127.0.0.1:8000"
    default_model: str = ""
    allowed_models: CommaList = Field(default_factory=list)
    connect_timeout_s: float = Field(5.0, gt=0)
    first_token_timeout_s: float = Field(120.0, gt=0)
    idle_timeout_s: float = Field(30.0, gt=0)
    total_timeout_s: float = Field(600.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    retry_backoff_s: float = Field(0.1, ge=0)
    retry_backoff_max_s: float = Field(2.0, ge=0)
    upstream_max_connections: int = Field(1024, ge=1)
    readiness_cache_s: float = Field(1.0, ge=0)
    max_response_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest non-streaming answer chat-api holds; larger: 502"
    )
    max_event_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="largest single SSE event from vLLM; larger: the stream ends in an error",
    )

    # Admission control
    max_concurrent_streams: int = Field(64, ge=1)
    queue_size: int = Field(64, ge=0)
    queue_timeout_s: float = Field(5.0, ge=0)
    rate_limit_per_minute: float = Field(600.0, ge=0, description="per API key (or client address); 0 = off")
    rate_limit_burst: int = Field(60, ge=1)

    # Request validation
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_messages: int = Field(256, ge=1)
    max_content_chars: int = Field(65_536, ge=1)
    max_tokens_cap: int = Field(4096, ge=1)
    default_max_tokens: int = Field(512, ge=1)
    max_n: int = Field(
        8, ge=1, le=128, description="most choices per request (and n x max_tokens <= the cap)"
    )
    max_top_logprobs: int = Field(5, ge=0, le=20)

    # Client connections (nginx in front applies its own, tighter, edge limits)
    body_timeout_s: float = Field(10.0, gt=0, description="time a client has to send its whole request body")
    max_connections: int = Field(
        1024, ge=1, description="open client connections and tasks; above it uvicorn answers 503"
    )
    keep_alive_s: int = Field(30, ge=1, description="idle keep-alive connections close after this")

    # Security
    api_keys_dir: Path | None = None
    cors_origins: CommaList = Field(default_factory=list)

    # Conversations stored per signed-in person (chat_api/history); anonymous callers get none
    database_url: str = Field(
        "sqlite+aiosqlite:///chat-api-history.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///<file> (one replica) or postgresql+asyncpg://...; "
        "empty: no server history (the browser keeps the conversations)",
    )
    database_migrate: Literal["startup", "off"] = "startup"
    database_pool_size: int = Field(5, ge=1, le=100)
    history_max_conversations: int = Field(1000, ge=1, description="per person")
    history_max_conversation_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="one stored conversation"
    )
    history_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="all of one person's conversations")
    history_max_import_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="one import request body")
    # TEST HOOK (issue 19, until personal API keys land): an operator key whose file name starts
    # with `person-` is taken as that person's own key. Never set in the chart.
    test_person_keys: bool = False

    # Logs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_prompts: bool = False

    @field_validator("allowed_models", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("upstream_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"CHAT_API_UPSTREAM_URL={value!r} must start with http:// or https:// "
                "(for example http://llama-vllm:8000)"
            )
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value).drivername
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError(
                "CHAT_API_DATABASE_URL must be sqlite+aiosqlite:///<path> or "
                "postgresql+asyncpg://<user>:<password>@<host>/<database> "
                f"(got a URL with driver {backend or 'none'!r})"
            )
        return value

    @field_validator("api_keys_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError(
                f"CHAT_API_DEFAULT_MAX_TOKENS={self.default_max_tokens} is above "
                f"CHAT_API_MAX_TOKENS_CAP={self.max_tokens_cap}; lower it or raise the cap"
            )
        if self.default_model and self.allowed_models and self.default_model not in self.allowed_models:
            raise ValueError(
                f"CHAT_API_DEFAULT_MODEL={self.default_model!r} is not in CHAT_API_ALLOWED_MODELS "
                f"{self.allowed_models}; add it there"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.api_keys_dir is not None
