"""A signed-in person for route tests: the session cookie chat-api's /auth/callback would write.

At /auth/callback, chat_api.signin lets authlib validate the provider's ID token, asks the allowlist,
then stores `SignIn.session_record(claims)` in the session, which Starlette's SessionMiddleware
(configured by `SignIn.middleware_options()`: cookie name, key from CHAT_API_SESSION_SECRET_FILE,
max age) signs into the cookie. `signed_in` runs exactly that last step, with the same record, the
same middleware and the same key, and returns the cookie it set. So the app under test verifies it
as it verifies any browser's: the signature (itsdangerous HMAC), the signature's age limit, the
issuer and the session's absolute end. Only the provider's round trip is left out (the real one is
in tests/integration/test_signin.py and tests/e2e/test_signin_ui.py). Building SignIn contacts no
provider: authlib reads the discovery document only at /auth/login and /auth/callback.
"""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
from chat_api.config import Settings
from chat_api.signin import SESSION_USER, SignIn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ISSUER = "https://idp.example.test"  # never contacted
APP_URL = "https://chat.example.test"


def signin_settings(folder: Path) -> dict[str, Any]:
    """Settings that turn sign-in on (the CHAT_API_OIDC_* and CHAT_API_SESSION_* ones), with the
    client secret and a fresh session key in files under `folder`, as the chart mounts them."""
    folder.mkdir(parents=True, exist_ok=True)
    client_secret = folder / "oidc-client-secret"
    client_secret.write_text(secrets.token_urlsafe(32))
    key_file = folder / "session-key"
    key_file.write_text(secrets.token_urlsafe(48))
    return {
        "oidc_issuer_url": ISSUER,
        "oidc_client_id": "llama-chat",
        "oidc_client_secret_file": client_secret,
        "oidc_redirect_url": f"{APP_URL}/auth/callback",
        "oidc_allowed_domains": ["example.com"],
        "session_secret_file": key_file,
    }


async def signed_in(settings: Settings, email: str, name: str = "") -> dict[str, str]:
    """The headers of `email` signed in to the chat-api configured by `settings`: its session
    cookie (sub: the address's local part; GET /auth/me tells the id chat-api gives the person)."""
    signin = SignIn(settings)
    claims = {"sub": email.partition("@")[0], "email": email, "email_verified": True, "name": name}
    refusal = signin.refusal(claims)
    assert not refusal, f"/auth/callback would refuse this person: {refusal}"

    async def callback(request: Request) -> Response:
        # What chat_api.signin's callback does once the provider's answer has passed validation.
        request.session.clear()
        request.session[SESSION_USER] = signin.session_record(claims)
        return Response(status_code=303, headers={"Location": "/"})

    writer = Starlette(
        routes=[Route("/auth/callback", callback)],
        middleware=[Middleware(SessionMiddleware, **signin.middleware_options())],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=writer), base_url=APP_URL) as client:
        answer = await client.get("/auth/callback")
    cookie = SimpleCookie(answer.headers["set-cookie"])[settings.session_cookie_name]
    assert cookie["httponly"], "the session cookie is HttpOnly"
    return {"Cookie": f"{settings.session_cookie_name}={cookie.value}"}
