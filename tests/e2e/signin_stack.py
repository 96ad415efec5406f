"""A stack a person signs in to, for the e2e tests: the UI image's nginx config (real nginx) on the
page's origin proxying /auth/, /api/ and /v1/ to a real chat-api (the chart's api-proxy.conf), which
signs people in with authlib against a real OpenID provider (npm oidc-provider with its own login
form); config.json says sign-in is on (the chart's chat-ui.config.signIn).

    stack = signin_stack_factory(upstream_url, CHAT_API_...="...")   # extra chat-api settings
    page.goto(stack.url); page.click(SIGNIN_BUTTON); sign_in_at_provider(page, "ada@example.com")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.local_run.process import free_port
from tests.e2e.browser import Page
from tests.e2e.chat_page import LOGS
from tests.fixtures.oidc_provider import (
    OidcProvider,
    SignInApi,
    signin_env,
    start_oidc_provider,
    start_signin_chat_api,
)
from tests.fixtures.ui_nginx import skip_without_nginx, ui_nginx

# Only what the chart needs to render chat-ui's ConfigMap with sign-in on (the chart refuses one
# half without the other); the running chat-api gets the real settings from signin_env.
CHART_SIGNIN = {
    "chat-api": {
        "auth": {
            "oidc": {
                "issuerUrl": "https://idp.example.com",
                "clientId": "llama-chat",
                "clientSecretSecret": "chat-signin",
                "redirectUrl": "https://chat.example.com/auth/callback",
                "allowedDomains": ["example.com"],
            }
        }
    },
    "chat-ui": {"config": {"signIn": True}},
}
SIGNIN_BUTTON = "a.signin-button"
PROVIDER_LOGIN = "input[name=login]"


@dataclass
class SignInStack:
    url: str
    provider: OidcProvider
    api: SignInApi


@pytest.fixture
def signin_stack_factory(ui_dist: Path, tmp_path: Path) -> Iterator[Callable[..., SignInStack]]:
    skip_without_nginx()
    stacks: list[tuple[OidcProvider, SignInApi]] = []
    edges = []

    def make(upstream_url: str, **env: str) -> SignInStack:
        work = tmp_path / f"stack{len(stacks)}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        provider = start_oidc_provider(work, url, LOGS)
        api = start_signin_chat_api(free_port(), upstream_url, signin_env(work, provider, url, **env), LOGS)
        stacks.append((provider, api))
        edge = ui_nginx(
            work / "nginx", ui_dist, api.base_url, "localhost", LOGS, port=port, chart_values=CHART_SIGNIN
        )
        edge.__enter__()
        edges.append(edge)
        return SignInStack(url, provider, api)

    yield make
    for edge in edges:
        edge.__exit__(None, None, None)
    for provider, api in stacks:
        api.process.stop()
        provider.process.stop()


def sign_in_at_provider(page: Page, login: str) -> None:
    """The provider's own login form (oidc-provider's devInteractions): any password."""
    page.wait_for(PROVIDER_LOGIN, timeout=30)
    page.fill(PROVIDER_LOGIN, login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
