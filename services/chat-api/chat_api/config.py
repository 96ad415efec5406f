"""Settings: every knob is an environment variable `CHAT_API_<NAME>` with a safe default.

services/chat-api/README.md lists them; keep that table in step with this class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_API_", extra="ignore", frozen=True)

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
    rate_limit_per_minute: float = Field(
        600.0, ge=0, description="requests per minute per principal (person, key or address); 0 = off"
    )
    rate_limit_burst: int = Field(60, ge=1, description="only without a store (the in-process limiter)")
    rate_limit_per_day: int = Field(0, ge=0, description="requests per day per principal; 0 = off")
    token_budget_per_minute: int = Field(
        0, ge=0, description="prompt + completion tokens per minute per principal; 0 = off"
    )
    token_budget_per_day: int = Field(0, ge=0, description="prompt + completion tokens per day; 0 = off")

    # The shared store (Redis): per-person API keys, limits and usage across replicas
    redis_url: SecretStr | None = Field(
        None, description="redis://[:password@]host:port/db or rediss://..., from a Secret (a password)"
    )
    redis_url_file: Path | None = Field(
        None, description="a file holding the URL (a mounted Secret); used when CHAT_API_REDIS_URL is unset"
    )
    redis_timeout_s: float = Field(2.0, gt=0, description="per Redis command; past it the request gets 503")
    usage_retention_days: int = Field(35, ge=1, le=400, description="how long per-person daily usage is kept")

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

    @model_validator(mode="before")
    @classmethod
    def _read_redis_url_file(cls, data: object) -> object:
        """The chart mounts the URL from a Secret as a file (a password in it stays out of the
        environment, which `kubectl describe` and crash dumps show)."""
        if isinstance(data, dict) and data.get("redis_url_file") and not data.get("redis_url"):
            path = Path(str(data["redis_url_file"]))
            try:
                data = {**data, "redis_url": path.read_text().strip()}
            except OSError as exc:
                raise ValueError(
                    f"CHAT_API_REDIS_URL_FILE={path} cannot be read ({exc.strerror}); mount the store's "
                    "Secret there or unset it"
                ) from None
        return data

    @field_validator("api_keys_dir", "redis_url", "redis_url_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The URL may hold a password: the message names the scheme only, never the value.
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError(
                "CHAT_API_REDIS_URL must start with redis://, rediss:// or unix:// "
                "(for example redis://llama-redis:6379/0); unset it to run without a shared store"
            )
        return value

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

    @property
    def store_enabled(self) -> bool:
        return self.redis_url is not None
