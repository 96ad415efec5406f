"""Sign-in for people against a real OpenID provider (npm oidc-provider, certified), real chat-api
and real vLLM CPU: the browser's steps are taken with httpx (tests/fixtures/oidc_provider.py); the
Chromium walk-through is tests/e2e/test_signin_ui.py.

Refused, each by authlib's validation or chat-api's session: no session, an expired session, a
tampered cookie, an ID token for another audience, one from another issuer, an account outside
the allowlist (wrong domain, unverified address)."""

from __future__ import annotations

import base64
import json as jsonlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from scripts.local_run.process import free_port
from tests.fixtures.oidc_provider import (
    SESSION_COOKIE,
    OidcProvider,
    SignInApi,
    sign_in_over_http,
    signin_env,
    start_oidc_provider,
    start_signin_chat_api,
)
from tests.fixtures.stack import LOG_DIR, VllmServer

pytestmark = pytest.mark.integration
CHAT = {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8}


def start_pair(
    work: Path, upstream_url: str, mutation: str = "", **env: str
) -> tuple[OidcProvider, SignInApi]:
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    provider = start_oidc_provider(work, app_url, LOG_DIR, mutation=mutation)
    try:
        api = start_signin_chat_api(port, upstream_url, signin_env(work, provider, app_url, **env), LOG_DIR)
    except BaseException:
        provider.process.stop()
        raise
    return provider, api


@pytest.fixture(scope="module")
def signin_stack(
    tmp_path_factory: pytest.TempPathFactory, vllm_server: VllmServer
) -> Iterator[tuple[OidcProvider, SignInApi]]:
    provider, api = start_pair(
        tmp_path_factory.mktemp("signin"),
        vllm_server.base_url,
        CHAT_API_OIDC_ALLOWED_GROUPS="ml-team",
        CHAT_API_OIDC_SCOPES="openid email profile groups",
    )
    yield provider, api
    api.process.stop()
    provider.process.stop()


def session_cookie_header(response: httpx.Response) -> str:
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v)


def test_a_person_signs_in_with_pkce_chats_and_signs_out(
    signin_stack: tuple[OidcProvider, SignInApi],
) -> None:
    provider, api = signin_stack
    with httpx.Client(timeout=60) as client:
        start = client.get(f"{api.base_url}/auth/login")
        assert start.status_code == 302
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert start.headers["location"].startswith(f"{provider.issuer}/auth?")
        assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
        assert query["nonce"] and query["state"] and query["scope"] == ["openid email profile groups"]

        done = sign_in_over_http(client, api.base_url, "ada@example.com")
        assert done.status_code == 303 and done.headers["location"] == "/"
        cookie = session_cookie_header(done).lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "max-age=115200" in cookie  # the 8 h session plus a day of saying "expired"

        me = client.get(f"{api.base_url}/auth/me")
        assert me.status_code == 200, me.text
        port = urlsplit(provider.issuer).port
        assert me.json()["id"] == f"user:127.0.0.1:{port}:ada@example.com"
        assert me.json()["email"] == "ada@example.com" and me.json()["name"] == "Ada Lovelace"

        with client.stream("POST", f"{api.base_url}/api/chat", json=CHAT) as stream:
            assert stream.status_code == 200
            body = stream.read().decode()
        assert "event: done" in body, body
        assert client.get(f"{api.base_url}/v1/models").status_code == 200

        out = client.post(f"{api.base_url}/auth/logout")
        assert out.status_code == 200
        target = out.json()["next"]
        assert target.startswith(f"{provider.issuer}/session/end?") and "post_logout_redirect_uri" in target
        assert client.get(f"{api.base_url}/auth/me").status_code == 401
        assert client.post(f"{api.base_url}/api/chat", json=CHAT).status_code == 401


def test_without_a_session_or_key_the_chat_routes_are_refused(
    signin_stack: tuple[OidcProvider, SignInApi],
) -> None:
    _, api = signin_stack
    for method, path in (("POST", "/api/chat"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
        response = httpx.request(method, f"{api.base_url}{path}", json=CHAT if method == "POST" else None)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "signin_required"
    me = httpx.get(f"{api.base_url}/auth/me")
    assert me.status_code == 401 and me.json()["error"]["code"] == "signin_required"
    # A made-up key is no way in either.
    bogus = httpx.get(f"{api.base_url}/v1/models", headers={"Authorization": "Bearer sk-made-up"})
    assert bogus.status_code == 401


def test_a_tampered_session_cookie_is_refused(signin_stack: tuple[OidcProvider, SignInApi]) -> None:
    _, api = signin_stack
    with httpx.Client(timeout=30) as client:
        sign_in_over_http(client, api.base_url, "ada@example.com")
        value = client.cookies[SESSION_COOKIE]
        assert client.get(f"{api.base_url}/auth/me").status_code == 200
    payload, _, signature = value.partition(".")
    # The payload is base64 JSON: change who it says is signed in, keep the old signature.
    data = jsonlib.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    data["user"]["sub"] = "somebody-else@example.com"
    data["user"]["exp"] = data["user"]["exp"] + 10**6
    forged = base64.b64encode(jsonlib.dumps(data).encode()).decode() + "." + signature
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    for cookie in (forged, flipped):
        me = httpx.get(f"{api.base_url}/auth/me", cookies={SESSION_COOKIE: cookie})
        assert me.status_code == 401 and me.json()["error"]["code"] == "signin_required"
        chat = httpx.post(f"{api.base_url}/api/chat", json=CHAT, cookies={SESSION_COOKIE: cookie})
        assert chat.status_code == 401


@pytest.mark.parametrize(
    ("login", "why"),
    [
        ("mallory@other.org", "mallory@other.org may not use this service: it admits e-mail addresses"),
        ("unverified@example.com", "its address is not verified"),
    ],
)
def test_an_account_outside_the_allowlist_is_refused_with_a_clear_page(
    signin_stack: tuple[OidcProvider, SignInApi], login: str, why: str
) -> None:
    _, api = signin_stack
    with httpx.Client(timeout=30) as client:
        refused = sign_in_over_http(client, api.base_url, login)
        assert refused.status_code == 403
        assert why in refused.text and "example.com" in refused.text and "ml-team" in refused.text
        assert client.get(f"{api.base_url}/auth/me").status_code == 401
        assert client.post(f"{api.base_url}/api/chat", json=CHAT).status_code == 401


def test_a_member_of_an_allowed_group_gets_in_from_another_domain(
    signin_stack: tuple[OidcProvider, SignInApi],
) -> None:
    _, api = signin_stack
    with httpx.Client(timeout=30) as client:
        assert sign_in_over_http(client, api.base_url, "grace@other.org").status_code == 303
        assert client.get(f"{api.base_url}/auth/me").json()["email"] == "grace@other.org"


def test_a_session_ends_at_its_absolute_lifetime_even_while_in_use(tmp_path: Path) -> None:
    provider, api = start_pair(tmp_path, "http://127.0.0.1:9", CHAT_API_SESSION_MAX_AGE_S="3")
    try:
        with httpx.Client(timeout=30) as client:
            assert sign_in_over_http(client, api.base_url, "ada@example.com").status_code == 303
            signed_in_at = time.monotonic()
            while time.monotonic() - signed_in_at < 2.0:
                assert client.get(f"{api.base_url}/auth/me").status_code == 200
                time.sleep(0.5)
            kept = client.cookies[SESSION_COOKIE]
            time.sleep(max(0.0, 3.5 - (time.monotonic() - signed_in_at)))
        expired = httpx.get(f"{api.base_url}/auth/me", cookies={SESSION_COOKIE: kept})
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "session_expired"
        chat = httpx.post(f"{api.base_url}/api/chat", json=CHAT, cookies={SESSION_COOKIE: kept})
        assert chat.status_code == 401
    finally:
        api.process.stop()
        provider.process.stop()


@pytest.mark.parametrize("mutation", ["aud", "iss"])
def test_an_id_token_for_another_audience_or_issuer_is_refused(tmp_path: Path, mutation: str) -> None:
    """The provider re-signs its ID token with its own key but another `aud` or `iss`: the signature
    is good, so only authlib's claim checks stand between it and a session."""
    provider, api = start_pair(tmp_path, "http://127.0.0.1:9", mutation=mutation)
    try:
        with httpx.Client(timeout=30) as client:
            refused = sign_in_over_http(client, api.base_url, "ada@example.com")
            assert refused.status_code == 401, refused.text
            assert "did not pass validation" in refused.text
            assert client.get(f"{api.base_url}/auth/me").status_code == 401
        # authlib names the claim that failed (chat-api logs it; the person's page does not).
        assert f"Invalid claim: '{mutation}'" in api.process.log_path.read_text()
    finally:
        api.process.stop()
        provider.process.stop()


def test_a_program_with_an_operator_key_still_gets_in_when_sign_in_is_on(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "batch-jobs").write_text("sk-operator-key-123456\n")
    # A dead upstream: 503 means the request got past authentication, 401 that it did not.
    provider, api = start_pair(tmp_path, "http://127.0.0.1:9", CHAT_API_API_KEYS_DIR=str(keys))
    try:
        models = f"{api.base_url}/v1/models"
        key = {"Authorization": "Bearer sk-operator-key-123456"}
        assert httpx.get(models, headers=key).status_code == 503
        assert httpx.get(models, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        assert httpx.get(models).json()["error"]["code"] == "signin_required"
    finally:
        api.process.stop()
        provider.process.stop()
