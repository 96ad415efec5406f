"""Errors a user can act on, each mapped once to an HTTP status and the OpenAI error shape."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error with its HTTP status, OpenAI `type`, a stable `code` and a message that names the fix."""

    status = 500
    type = "server_error"
    code = "internal_error"
    # The `error` event code of the UI stream (docs/interfaces.md).
    event_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()

    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.event_code, "message": self.message}
        return data


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    event_code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    code = "unsupported_media_type"

    def __init__(self) -> None:
        super().__init__("send the body as JSON with `Content-Type: application/json`")


class BodyTimeout(InvalidRequest):
    status = 408
    code = "request_timeout"


class ModelNotAllowed(InvalidRequest):
    status = 404
    code = "model_not_found"


class Unauthorized(ApiError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    event_code = "invalid_request"

    def __init__(
        self, message: str = "missing or invalid API key; send `Authorization: Bearer <key>`"
    ) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


REJECTION_CODES = {
    "concurrency": "concurrency_limit",
    "rate_limit": "rate_limit_exceeded",
    "token_budget": "token_budget_exceeded",
}


class Rejected(ApiError):
    """Over a limit: 429 with Retry-After."""

    status = 429
    type = "rate_limit_error"
    event_code = "rate_limited"

    def __init__(self, message: str, *, reason: str, retry_after_s: float) -> None:
        self.reason = reason  # metrics label: concurrency | rate_limit | token_budget
        self.retry_after_s = max(1, int(retry_after_s + 0.999))
        super().__init__(
            message,
            code=REJECTION_CODES[reason],
            headers={"Retry-After": str(self.retry_after_s)},
        )

    def event(self) -> dict[str, Any]:
        return {**super().event(), "retry_after_s": self.retry_after_s}


class UpstreamError(ApiError):
    """vLLM failed; `kind` is the bounded metrics label (connect, timeout, http_4xx, http_5xx, protocol)."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    event_code = "upstream_error"
    kind = "protocol"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"
    event_code = "upstream_unavailable"
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    event_code = "upstream_timeout"
    kind = "timeout"


class UpstreamHTTPError(UpstreamError):
    """vLLM answered with an error status; its message passes through, 4xx keep their status."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, upstream_type: str = ""
    ) -> None:
        self.kind = "http_4xx" if 400 <= status < 500 else "http_5xx"
        if 400 <= status < 500:
            self.type = "invalid_request_error"
            self.event_code = "invalid_request"
            code = upstream_type or "invalid_request"
        else:
            code = "upstream_error"
            status = 502 if status not in (503, 504) else status
            if status == 503:
                self.event_code = "upstream_unavailable"
        super().__init__(message, param=param, code=code, status=status)


class StreamInterrupted(UpstreamError):
    """The upstream stream broke after bytes reached the client; only an in-band event can say so."""

    code = "stream_interrupted"
    event_code = "stream_interrupted"


def upstream_http_error(status: int, body: bytes) -> UpstreamHTTPError:
    """Build the error from vLLM's own body, keeping its message (it names the bad parameter)."""
    message = ""
    param = None
    upstream_type = ""
    try:
        parsed = json.loads(body)
        err = parsed.get("error", parsed) if isinstance(parsed, dict) else {}
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            param = err.get("param") if isinstance(err.get("param"), str) else None
            upstream_type = str(err.get("type") or "")
        elif isinstance(parsed, dict) and "detail" in parsed:
            message = str(parsed["detail"])
    except (ValueError, AttributeError):
        message = body[:500].decode(errors="replace")
    if not message:
        message = f"vLLM answered HTTP {status}"
    if status >= 500:
        # The body is in chat-api's log under the request id; it may name internals.
        message = f"the model server failed (HTTP {status}); retry later"
    else:
        message = message[:500]
    return UpstreamHTTPError(status, message, param=param, upstream_type=_snake(upstream_type))


def _snake(name: str) -> str:
    # vLLM's types are class names (BadRequestError, NotFoundError); OpenAI codes are snake_case.
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
