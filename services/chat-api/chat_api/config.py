"""Settings: every knob is an environment variable `CHAT_API_<NAME>` with a safe default.

docs/chat-api.md lists them; keep that table in step with this class.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


def _loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _safe_url(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.hostname) and (parts.scheme == "https" or _loopback_http(url))


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
    cold_start_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="vLLM silent since chat-api started is `starting` this long, then `unavailable`",
    )

    # vLLM's pod status from the Kubernetes API (chat_api/vllm_pods.py); off when the selector is empty
    vllm_pod_selector: str = Field(
        "", description="label selector of the vLLM pods in chat-api's namespace; empty: off"
    )
    kubernetes_api_url: str = Field(
        "", description="the API server; empty: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
    )
    kubernetes_account_dir: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount")
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

    # Sign-in for people: OpenID Connect (chat_api.signin). Off while oidc_issuer_url is empty.
    oidc_issuer_url: str = ""
    oidc_client_id: str = ""
    oidc_client_secret_file: Path | None = None
    oidc_redirect_url: str = Field("", description="the public URL of /auth/callback, as registered")
    oidc_scopes: str = "openid email profile"
    oidc_allowed_domains: CommaList = Field(default_factory=list)
    oidc_allowed_groups: CommaList = Field(default_factory=list)
    oidc_groups_claim: str = "groups"
    oidc_allow_any_account: bool = False
    session_secret_file: Path | None = None
    session_max_age_s: int = Field(8 * 3600, ge=1, le=30 * 86400)
    session_cookie_secure: bool = True
    session_cookie_name: str = Field("chat_session", pattern=r"^[A-Za-z0-9_\-]{1,64}$")

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

    # Logs
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_prompts: bool = False

    @field_validator(
        "allowed_models", "cors_origins", "oidc_allowed_domains", "oidc_allowed_groups", mode="before"
    )
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
                "(for example http://llama-vllm-llama:8000)"
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

    @field_validator("kubernetes_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError(
                f"CHAT_API_KUBERNETES_API_URL={value!r} must start with https:// (the token is sent to it); "
                "leave it empty in a cluster"
            )
        return value.rstrip("/")

    @field_validator("vllm_pod_selector")
    @classmethod
    def _check_selector(cls, value: str) -> str:
        value = value.strip()
        for term in filter(None, (t.strip() for t in value.split(","))):
            key, sep, label = term.partition("=")
            if not sep or not key.strip() or not label.strip() or "!" in key or "(" in term:
                raise ValueError(
                    f"CHAT_API_VLLM_POD_SELECTOR term {term!r} is not key=value; use equality terms "
                    "such as app.kubernetes.io/name=vllm-llama,app.kubernetes.io/instance=llama"
                )
        return value

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

    @field_validator(
        "api_keys_dir",
        "oidc_client_secret_file",
        "session_secret_file",
        "redis_url",
        "redis_url_file",
        mode="before",
    )
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
        self._check_signin()
        return self

    def _check_signin(self) -> None:
        """Sign-in is all or nothing: every part named, safe transport, and an allowlist."""
        if not self.oidc_issuer_url:
            stray = [
                name
                for name in ("oidc_client_id", "oidc_client_secret_file", "oidc_redirect_url")
                if getattr(self, name)
            ] + [name for name in ("oidc_allowed_domains", "oidc_allowed_groups") if getattr(self, name)]
            if stray:
                names = ", ".join(f"CHAT_API_{n.upper()}" for n in stray)
                raise ValueError(
                    f"{names} set but CHAT_API_OIDC_ISSUER_URL is empty; set the issuer to turn sign-in on, "
                    "or unset them"
                )
            return
        missing = [
            f"CHAT_API_{name.upper()}"
            for name in (
                "oidc_client_id",
                "oidc_client_secret_file",
                "oidc_redirect_url",
                "session_secret_file",
            )
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(
                f"CHAT_API_OIDC_ISSUER_URL is set, so sign-in needs {', '.join(missing)} too "
                "(docs/chat-api.md, Sign-in)"
            )
        for name in ("oidc_issuer_url", "oidc_redirect_url"):
            if not _safe_url(getattr(self, name)):
                raise ValueError(
                    f"CHAT_API_{name.upper()}={getattr(self, name)!r} must be an https:// URL "
                    "(http:// only for 127.0.0.1 or localhost, in tests)"
                )
        if not self.oidc_redirect_url.rstrip("/").endswith("/auth/callback"):
            raise ValueError(
                f"CHAT_API_OIDC_REDIRECT_URL={self.oidc_redirect_url!r} must end in /auth/callback "
                "(e.g. https://chat.example.com/auth/callback, registered at the provider)"
            )
        if not self.session_cookie_secure and not _loopback_http(self.oidc_redirect_url):
            raise ValueError(
                "CHAT_API_SESSION_COOKIE_SECURE=false is only for tests on http://127.0.0.1; "
                f"{self.oidc_redirect_url} is not that: serve it over HTTPS and keep the cookie Secure"
            )
        if "openid" not in self.oidc_scopes.split():
            raise ValueError(f"CHAT_API_OIDC_SCOPES={self.oidc_scopes!r} must include openid")
        if not (self.oidc_allowed_domains or self.oidc_allowed_groups or self.oidc_allow_any_account):
            raise ValueError(
                "sign-in is on but nobody is allowed: set CHAT_API_OIDC_ALLOWED_DOMAINS (e.g. example.com) "
                "and/or CHAT_API_OIDC_ALLOWED_GROUPS, or CHAT_API_OIDC_ALLOW_ANY_ACCOUNT=true when the "
                "provider itself admits only your people (a Cognito pool or Keycloak realm of your own; "
                "never with Google or Entra's common tenant)"
            )

    @property
    def signin_enabled(self) -> bool:
        return bool(self.oidc_issuer_url)

    @property
    def auth_enabled(self) -> bool:
        return self.api_keys_dir is not None

    @property
    def store_enabled(self) -> bool:
        return self.redis_url is not None


# What Kubernetes itself puts into a container's environment for a Service named chat-api[-*] in
# the namespace (service links): not a mistyped setting.
_SERVICE_LINK = re.compile(
    r"CHAT_API_(\w+_)?(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)"
)


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """A sentence per CHAT_API_* variable that is no setting (a typo such as
    CHAT_API_MAX_BODY_BYTE would otherwise be ignored without a word), naming the closest one."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    known = sorted(f"{prefix}{name}".upper() for name in Settings.model_fields)
    problems = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in known or _SERVICE_LINK.fullmatch(name):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        fix = f"did you mean {close[0]}?" if close else "docs/chat-api.md lists the settings"
        problems.append(f"{name} is no chat-api setting; {fix}")
    return problems
