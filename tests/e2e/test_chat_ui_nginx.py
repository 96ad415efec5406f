"""The image's nginx config, run by a real nginx, with the chart's runtime files, in a real browser.

No container runtime here, so the test runs Debian's nginx with exactly what the image and the chart
put in place: ui/nginx/default.conf.template rendered by envsubst (as the image's entrypoint does),
the built ui/dist, and the chart's ConfigMap (config.json and the api-proxy.conf that makes chat-api
same-origin). Paths and the port are the only things moved (the image's live in /usr/share/nginx and
/etc/nginx). Then a browser chats through it with real chat-api and real vLLM CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import Page
from tests.e2e.chat_page import (
    LAST_ANSWER,
    LOGS,
    open_chat,
    record_answer_lengths,
    send,
    set_max_tokens,
)
from tests.fixtures.stack import ChatApiServer, VllmServer
from tests.fixtures.ui_nginx import skip_without_nginx, ui_nginx

pytestmark = pytest.mark.e2e


@pytest.fixture
def nginx_ui(ui_dist: Path, chat_api_factory: Callable[..., ChatApiServer], tmp_path: Path) -> Iterator[str]:
    skip_without_nginx()
    api = chat_api_factory()  # same origin: no CORS allowlist needed
    with ui_nginx(tmp_path / "nginx", ui_dist, api.base_url, "localhost", LOGS) as edge:
        yield edge.url


def test_nginx_serves_the_app_with_caching_headers_and_a_strict_csp(nginx_ui: str) -> None:
    index = httpx.get(f"{nginx_ui}/")
    assert index.status_code == 200 and '<div id="root">' in index.text
    assert index.headers["cache-control"] == "no-cache"
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self';" in csp and "frame-ancestors 'none'" in csp
    asset = index.text.split('src="')[1].split('"')[0]
    cached = httpx.get(f"{nginx_ui}{asset}")
    assert (
        cached.status_code == 200 and cached.headers["cache-control"] == "public, max-age=31536000, immutable"
    )
    config = httpx.get(f"{nginx_ui}/config.json")
    assert json.loads(config.text)["apiBaseUrl"] == "" and config.headers["cache-control"] == "no-cache"
    assert httpx.get(f"{nginx_ui}/a/client/route").text == index.text, "SPA fallback"
    assert httpx.get(f"{nginx_ui}/assets/missing-123.js").status_code == 404
    assert httpx.get(f"{nginx_ui}/readyz").json()["status"] == "ready", (
        "the API is proxied on the same origin"
    )


def test_chat_streams_through_nginx_same_origin(page: Page, nginx_ui: str, vllm_server: VllmServer) -> None:
    open_chat(page, nginx_ui)
    assert page.texts(".model-picker select option") == ["tiny-llama"]
    set_max_tokens(page, 120)
    record_answer_lengths(page)
    send(page, "Hello through nginx")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    lengths = [n for status, n in page.eval("window.__lengths") if status == "streaming" and n > 0]
    # proxy_buffering off: the answer arrives in pieces, not in one block when nginx's buffer fills.
    assert len(set(lengths)) >= 3, f"the answer should stream through nginx, saw lengths {lengths}"
    page.screenshot("24-through-nginx-same-origin")
