"""scripts/local_run/ui.py: the local static server serves the built UI like the image's nginx does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.local_run import ui
from scripts.local_run.process import REPO_ROOT, free_port

pytestmark = pytest.mark.unit

# The parts both nginx configs (plain and HTTPS) include: http-level settings and the site.
NGINX_TEMPLATES = [REPO_ROOT / "ui" / "nginx" / f"chat-ui-{part}.inc.template" for part in ("http", "site")]


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><div id="root"></div>')
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


@pytest.fixture
def server(dist: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    api = "http://127.0.0.1:8080/"
    proc = ui.start_ui(dist, port, api, tmp_path / "ui.log", api_key="key-123", title="T")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def test_config_json_comes_from_the_settings_and_is_never_cached(server: str) -> None:
    response = httpx.get(f"{server}/config.json")
    assert response.json() == {"apiBaseUrl": "http://127.0.0.1:8080/", "title": "T", "apiKey": "key-123"}
    assert response.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_immutable_and_index_is_revalidated(server: str) -> None:
    asset = httpx.get(f"{server}/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(f"{server}/").headers["cache-control"] == "no-cache"


def test_client_side_routes_fall_back_to_the_app_but_missing_files_are_404(server: str) -> None:
    route = httpx.get(f"{server}/some/conversation")
    assert route.status_code == 200 and 'id="root"' in route.text
    assert httpx.get(f"{server}/assets/gone-123.js").status_code == 404
    assert httpx.get(f"{server}/favicon.ico").status_code == 404


def test_csp_allows_only_own_scripts_and_the_api_origin(server: str) -> None:
    csp = httpx.get(f"{server}/").headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "connect-src 'self' http://127.0.0.1:8080;" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_api_key_is_passed_by_environment_not_argv(dist: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = ui.start_ui(dist, port, "", tmp_path / "ui.log", api_key="secret-xyz")
    try:
        assert "secret-xyz" not in " ".join(proc.argv)
        assert httpx.get(f"http://127.0.0.1:{port}/config.json").json()["apiKey"] == "secret-xyz"
    finally:
        proc.stop()


def test_missing_build_and_bad_api_url_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm run build"):
        ui.start_ui(tmp_path, free_port(), "", tmp_path / "ui.log")
    (tmp_path / "index.html").write_text("x")
    with pytest.raises(ValueError, match="api_base_url='ftp://x'"):
        ui.start_ui(tmp_path, free_port(), "ftp://x", tmp_path / "ui.log")


def test_nginx_image_sends_the_same_policy_as_the_local_server() -> None:
    template = "".join(path.read_text() for path in NGINX_TEMPLATES)
    header = re.search(r'add_header Content-Security-Policy "([^"]+)" always;', template)
    assert header, "the nginx template sets a Content-Security-Policy"
    local = ui.content_security_policy("")  # same origin: connect-src 'self'
    assert header.group(1).replace("${CSP_CONNECT_SRC}", "'self'") == local
    assert '~^/assets/  "public, max-age=31536000, immutable"' in template
    assert "include /etc/nginx/extra/*.conf;" in template


def test_default_runtime_config_in_the_image_is_same_origin() -> None:
    config = json.loads((REPO_ROOT / "ui" / "public" / "config.json").read_text())
    assert config["apiBaseUrl"] == ""
