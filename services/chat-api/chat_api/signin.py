"""Sign-in for people: OpenID Connect, authorization code with PKCE, by authlib.

    GET  /auth/login     -> 302 to the provider (state, nonce and PKCE S256 kept in the session)
    GET  /auth/callback  -> authlib exchanges the code and validates the ID token (signature from
                            the provider's JWKS, iss, aud, exp, nonce); the allowlist decides;
                            303 to / with the session cookie, or a page that says why not
    POST /auth/logout    -> the session is cleared; {"next": the provider's end-session URL or /}
    GET  /auth/me        -> who is signed in, or 401 (signin_required | session_expired)

Nothing here validates a token by hand: authlib does (authlib.integrations.starlette_client and
authlib.oidc.core.CodeIDToken). The session is Starlette's SessionMiddleware: a cookie signed with
itsdangerous (HMAC over the JSON), HttpOnly, Secure, SameSite=Lax, written at sign-in; the signed-in
person's record inside it carries an absolute expiry (CHAT_API_SESSION_MAX_AGE_S from sign-in) that
activity does not extend. A tampered cookie fails its signature and is an empty session.

Off unless CHAT_API_OIDC_ISSUER_URL is set (`make up` on 127.0.0.1 stays open and says so).
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.middleware.sessions import SessionMiddleware

from chat_api.config import Settings
from chat_api.errors import Unauthorized
from chat_api.identity import Principal

log = logging.getLogger("chat_api.signin")
PROVIDER = "oidc"  # authlib's name for the one registered provider
SESSION_USER = "user"
MIN_SESSION_SECRET_BYTES = 32
EXPIRED_NOTICE_S = 86400  # how long after its end a session cookie still says "expired"


class SignInConfigError(RuntimeError):
    """A sign-in setting or one of its files is wrong; the message names it and the fix."""


class SignInRequired(Unauthorized):
    code = "signin_required"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(
            message
            or "sign in first (open the chat page, or GET /auth/login), or send an API key as "
            "`Authorization: Bearer <key>`"
        )
        if code is not None:
            self.code = code


class SessionExpired(SignInRequired):
    code = "session_expired"

    def __init__(self) -> None:
        super().__init__("your sign-in has expired; sign in again (GET /auth/login)")


def read_secret_file(path: Path, setting: str, min_bytes: int = 1) -> str:
    """A secret from a mounted file (never an environment variable: those show in `ps e`, crash
    dumps and `kubectl describe`)."""
    try:
        value = path.read_text(errors="strict").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignInConfigError(
            f"{setting}={path} cannot be read ({exc.__class__.__name__}); mount the Secret there"
        ) from None
    if len(value.encode()) < min_bytes:
        raise SignInConfigError(
            f"{setting}={path} holds {len(value.encode())} bytes; it needs at least {min_bytes} "
            "(for a session key: `openssl rand -base64 48`)"
        )
    return value


class SignIn:
    """The configured provider, the allowlist and the session's reading and writing."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer_url and settings.oidc_client_secret_file and settings.session_secret_file
        self.settings = settings
        self.issuer = settings.oidc_issuer_url
        self.issuer_host = (urlsplit(self.issuer).netloc or self.issuer).lower()
        self.redirect_url = settings.oidc_redirect_url
        parts = urlsplit(self.redirect_url)
        self.public_origin = f"{parts.scheme}://{parts.netloc}"
        self.session_secret = read_secret_file(
            settings.session_secret_file, "CHAT_API_SESSION_SECRET_FILE", MIN_SESSION_SECRET_BYTES
        )
        client_secret = read_secret_file(settings.oidc_client_secret_file, "CHAT_API_OIDC_CLIENT_SECRET_FILE")
        self.oauth = OAuth()
        self.oauth.register(
            PROVIDER,
            client_id=settings.oidc_client_id,
            client_secret=client_secret,
            server_metadata_url=f"{self.issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256", "timeout": 10.0},
        )
        self.client = self.oauth.create_client(PROVIDER)
        self.domains = {d.lower().lstrip("@") for d in settings.oidc_allowed_domains}
        self.groups = set(settings.oidc_allowed_groups)

    def middleware_options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "secret_key": self.session_secret,
            "session_cookie": s.session_cookie_name,
            # The cookie (and its signature's age limit) outlives the session by a grace period: the
            # signed record inside carries the session's absolute end, and a page left open past it
            # is told "your sign-in has expired" rather than "you are signed out".
            "max_age": s.session_max_age_s + EXPIRED_NOTICE_S,
            "path": "/",
            "same_site": "lax",
            "https_only": s.session_cookie_secure,
        }

    # ---- the session

    def principal(self, request: Request) -> Principal | None:
        """The signed-in person of this request, None when there is no session; raises
        SessionExpired when there was one and its time is up."""
        user = request.session.get(SESSION_USER)
        if not isinstance(user, dict):
            return None
        if user.get("iss") != self.issuer or not isinstance(user.get("sub"), str):
            # Signed by us but for another provider (the issuer setting changed): not valid here.
            request.session.pop(SESSION_USER, None)
            return None
        if not isinstance(user.get("exp"), int | float) or user["exp"] <= time.time():
            # Kept (it admits nothing any more): every later request still says "expired", not
            # "signed out", until the person signs in again.
            raise SessionExpired()
        return Principal(
            id=f"user:{self.issuer_host}:{user['sub']}",
            kind="person",
            via="session",
            email=str(user.get("email") or ""),
            name=str(user.get("name") or ""),
        )

    def session_record(self, claims: dict[str, Any]) -> dict[str, Any]:
        """What the session cookie holds for a person who signed in with these (validated, admitted)
        ID token claims: who, and the session's absolute end, which activity does not extend."""
        return {
            "iss": self.issuer,
            "sub": str(claims["sub"]),
            "email": str(claims.get("email") or ""),
            "name": str(claims.get("name") or claims.get("preferred_username") or ""),
            "exp": int(time.time()) + self.settings.session_max_age_s,
        }

    # ---- the allowlist

    def refusal(self, claims: dict[str, Any]) -> str:
        """Why this account may not sign in, or "" when it may."""
        if self.settings.oidc_allow_any_account:
            return ""
        email = str(claims.get("email") or "")
        # Cognito sends email_verified as the string "true". An unverified address proves nothing.
        verified = claims.get("email_verified") in (True, "true")
        domain = email.rpartition("@")[2].lower() if "@" in email else ""
        if domain and verified and domain in self.domains:
            return ""
        claim = claims.get(self.settings.oidc_groups_claim)
        groups = {claim} if isinstance(claim, str) else {str(g) for g in claim or () if isinstance(g, str)}
        if groups & self.groups:
            return ""
        who = email or f"the account {claims.get('sub')!s}"
        rules = []
        if self.domains:
            rules.append("e-mail addresses (verified) at " + ", ".join(sorted(self.domains)))
        if self.groups:
            rules.append("members of the group " + " or ".join(sorted(self.groups)))
        unverified = " (its address is not verified by the provider)" if email and not verified else ""
        return f"{who}{unverified} may not use this service: it admits {' and '.join(rules)}."

    def claims_options(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """What authlib checks the ID token's claims against. Given explicitly: by default authlib
        checks `iss` but not that `aud` holds this client (OpenID Connect Core 3.1.3.7 step 3); a
        token for another client with `azp` set to ours would pass."""
        return {
            "iss": {"essential": True, "values": [metadata["issuer"]]},
            "aud": {"essential": True, "values": [self.settings.oidc_client_id]},
        }

    # ---- provider metadata

    async def metadata(self) -> dict[str, Any]:
        metadata = await self.client.load_server_metadata()
        # OpenID Connect Discovery 1.0 section 4.3: the document's issuer must be the one asked for.
        if metadata.get("issuer", "").rstrip("/") != self.issuer.rstrip("/"):
            raise SignInConfigError(
                f"the provider at {self.issuer} calls itself {metadata.get('issuer')!r}: set "
                "CHAT_API_OIDC_ISSUER_URL to exactly the issuer its discovery document names"
            )
        return metadata


def page(
    status: int, title: str, text: str, link: str = "/auth/login", link_text: str = "Sign in"
) -> HTMLResponse:
    """A plain page for a person's browser (no script and no inline style: the UI's CSP applies)."""
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><main><h1>{html.escape(title)}</h1>"
        f"<p id=signin-message>{html.escape(text)}</p>"
        f'<p><a id=signin-link href="{html.escape(link)}">{html.escape(link_text)}</a></p></main></html>'
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def install(app: Any, signin: SignIn | None) -> None:
    """The /auth routes (401 `signin_off` when sign-in is off) and, when on, the session middleware."""
    router = APIRouter(prefix="/auth", include_in_schema=False)

    def configured() -> SignIn:
        if signin is None:
            raise SignInRequired(
                "sign-in is not configured on this chat-api (CHAT_API_OIDC_ISSUER_URL)", code="signin_off"
            )
        return signin

    @router.get("/login")
    async def login(request: Request) -> Response:
        s = configured()
        request.session.pop(SESSION_USER, None)
        # "Sign in as someone else" after a refusal: the provider asks again instead of reusing its session.
        extra = {"prompt": "login"} if request.query_params.get("prompt") == "login" else {}
        try:
            await s.metadata()
            return await s.client.authorize_redirect(request, s.redirect_url, **extra)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the sign-in provider does not answer", extra={"error": repr(exc)})
            return page(
                502, "Sign-in is unavailable", "The sign-in provider does not answer; try again in a minute."
            )
        except SignInConfigError as exc:
            log.error("sign-in misconfigured: %s", exc)
            return page(502, "Sign-in is misconfigured", "Tell whoever runs this service: " + str(exc))

    @router.get("/callback")
    async def callback(request: Request) -> Response:
        s = configured()
        try:
            metadata = await s.metadata()
            token = await s.client.authorize_access_token(request, claims_options=s.claims_options(metadata))
        except OAuthError as exc:
            log.warning("sign-in refused", extra={"error": f"{exc.error}: {exc.description}"})
            return page(401, "Sign-in failed", f"The sign-in did not complete ({exc.error}). Start again.")
        except JoseError as exc:
            # The ID token failed authlib's checks: signature, issuer, audience, expiry or nonce.
            log.warning("sign-in refused: the ID token is not valid", extra={"error": repr(exc)})
            return page(401, "Sign-in failed", "The provider's answer did not pass validation. Start again.")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("sign-in failed: the provider does not answer", extra={"error": repr(exc)})
            return page(
                502, "Sign-in is unavailable", "The sign-in provider does not answer; try again in a minute."
            )
        except SignInConfigError as exc:
            log.error("sign-in misconfigured: %s", exc)
            return page(502, "Sign-in is misconfigured", "Tell whoever runs this service: " + str(exc))
        claims = token.get("userinfo")
        if not claims or not claims.get("sub"):
            log.warning("sign-in refused: no ID token in the provider's answer")
            return page(401, "Sign-in failed", "The provider sent no ID token. Start again.")
        reason = s.refusal(dict(claims))
        if reason:
            log.warning(
                "sign-in refused by the allowlist",
                extra={"identity": f"user:{s.issuer_host}:{claims['sub']}"},
            )
            return page(
                403,
                "Not allowed",
                reason,
                link="/auth/login?prompt=login",
                link_text="Sign in as someone else",
            )
        request.session.clear()
        request.session[SESSION_USER] = s.session_record(dict(claims))
        log.info("signed in", extra={"identity": f"user:{s.issuer_host}:{claims['sub']}"})
        return RedirectResponse("/", status_code=303)

    @router.post("/logout")
    async def logout(request: Request) -> JSONResponse:
        s = configured()
        request.session.clear()
        target = "/"
        try:
            end_session = (await s.metadata()).get("end_session_endpoint")
        except (httpx.HTTPError, ValueError, SignInConfigError):
            end_session = None
        if end_session:
            # RP-Initiated Logout 1.0: ends the provider's session too, then comes back here.
            query = urlencode(
                {"client_id": s.settings.oidc_client_id, "post_logout_redirect_uri": f"{s.public_origin}/"}
            )
            target = f"{end_session}{'&' if '?' in end_session else '?'}{query}"
        return JSONResponse({"next": target}, headers={"Cache-Control": "no-store"})

    @router.get("/me")
    async def me(request: Request) -> JSONResponse:
        s = configured()
        principal = s.principal(request)
        if principal is None:
            raise SignInRequired()
        expires = request.session[SESSION_USER]["exp"]
        return JSONResponse(
            {"id": principal.id, "email": principal.email, "name": principal.name, "expiresAt": int(expires)},
            headers={"Cache-Control": "no-store"},
        )

    app.include_router(router)
    if signin is not None:
        app.add_middleware(SessionMiddleware, **signin.middleware_options())
