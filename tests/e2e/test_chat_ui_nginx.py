"""The image's nginx config, run by a real nginx, with the chart's runtime files, in a real browser.

No container runtime here, so the test runs Debian's nginx with exactly what the image and the chart
put in place: ui/nginx/default.conf.template rendered by envsubst (as the image's entrypoint does),
the built ui/dist, and the chart's ConfigMap (config.json and the api-proxy.conf that makes chat-api
same-origin). Paths and the port are the only things moved (the image's live in /usr/share/nginx and
/etc/nginx). Then a browser chats through it with real chat-api and real vLLM CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from scripts import chart
from scripts.localstack.process import REPO_ROOT, ManagedProcess, free_port, http_ok
from tests.chart import cases
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

pytestmark = pytest.mark.e2e

TEMPLATE = REPO_ROOT / "ui" / "nginx" / "default.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The parts of nginx-unprivileged's /etc/nginx/nginx.conf that matter here, with writable paths.
MAIN_CONF = """
worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {run}/access.log;
    client_body_temp_path {run}/client_temp;
    proxy_temp_path {run}/proxy_temp;
    fastcgi_temp_path {run}/fastcgi_temp;
    uwsgi_temp_path {run}/uwsgi_temp;
    scgi_temp_path {run}/scgi_temp;
    sendfile on;
    include {run}/conf.d/*.conf;
}}
"""


def chart_configmap(api_upstream: str) -> dict[str, str]:
    manifests = chart.render(
        [],
        release="llama",
        namespace="llama",
        extra_values=cases.with_image_registry([], {"chat-ui": {"apiProxy": {"upstream": api_upstream}}}),
    )
    return next(
        m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "llama-chat-ui"
    )["data"]


@pytest.fixture
def nginx_ui(ui_dist: Path, chat_api_factory: Callable[..., ChatApiServer], tmp_path: Path) -> Iterator[str]:
    if not Path(NGINX).exists():
        pytest.skip(
            "nginx is not installed (Debian: apt-get install nginx-light); it runs the image's config"
        )
    api = chat_api_factory()  # same origin: no CORS allowlist needed
    run = tmp_path / "nginx"
    for sub in ("conf.d", "extra", "config"):
        (run / sub).mkdir(parents=True)
    data = chart_configmap(api.base_url)
    (run / "config" / "config.json").write_text(data["config.json"])
    (run / "extra" / "api-proxy.conf").write_text(data["api-proxy.conf"])

    port = free_port()
    rendered = subprocess.run(
        ["envsubst", "${CSP_CONNECT_SRC} ${SERVER_NAMES}"],
        input=TEMPLATE.read_text(),
        env={"CSP_CONNECT_SRC": "'self'", "SERVER_NAMES": "localhost"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    moves = {
        "listen 8080": f"listen 127.0.0.1:{port}",
        "root /usr/share/nginx/html;": f"root {ui_dist};",
        "/usr/share/nginx/config/config.json": str(run / "config" / "config.json"),
        "/etc/nginx/extra/*.conf": f"{run}/extra/*.conf",
        "/var/log/nginx/access.log": f"{run}/access.log",
    }
    for old, new in moves.items():
        assert old in rendered, f"the template no longer has {old!r}: update this test"
        rendered = rendered.replace(old, new)
    (run / "conf.d" / "default.conf").write_text(rendered)
    main = run / "nginx.conf"
    main.write_text(MAIN_CONF.format(run=run) + ("user root;\n" if _is_root() else ""))

    check = subprocess.run([NGINX, "-t", "-c", str(main), "-p", str(run)], capture_output=True, text=True)
    assert check.returncode == 0, f"nginx -t rejects the image's config:\n{check.stderr}"
    proc = ManagedProcess(
        name=f"nginx:{port}",
        argv=[NGINX, "-c", str(main), "-p", str(run)],
        log_path=LOGS / f"nginx-{port}.log",
    ).start()
    try:
        proc.wait_ready(http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=20, interval=0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def _is_root() -> bool:
    return os.geteuid() == 0


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
    page.screenshot("13-through-nginx-same-origin")
