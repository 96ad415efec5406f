"""`make up` serves the UI through the same nginx configuration as the cluster.

The pod's configuration is rebuilt here from its sources without scripts/local_run/ui_nginx.py:
the templates ui/Dockerfile copies into the image, filled by gettext's real `envsubst` (what the
image's entrypoint runs) with the env of the chart's Deployment, and the ConfigMap files at the
chart's mount paths. The local one is what `make up` writes. They may differ only by the
documented substitutions (ui_nginx.local_paths: paths, the listen address; and the API upstream).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts import chart
from scripts.local_run import ui_nginx
from scripts.local_run.process import REPO_ROOT, free_port
from tests.chart import cases

DOCKERFILE = REPO_ROOT / "ui" / "Dockerfile"
LOCAL_API = "http://127.0.0.1:18080"
NOTE = "Answers come from a demo model."


def dockerfile_templates(folder: str) -> list[Path]:
    """The files ui/Dockerfile copies into `folder` (a COPY line ending in it)."""
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and words[-1].rstrip("/") == folder:
            return [DOCKERFILE.parent / source for source in words[1:-1]]
    raise AssertionError(f"ui/Dockerfile copies nothing into {folder}")


def dockerfile_env() -> dict[str, str]:
    """ENV NAME="value" lines of the runtime stage (the defaults the chart's env overrides)."""
    return {m[0]: m[1] for m in re.findall(r'^ENV (\w+)="(.*)"$', DOCKERFILE.read_text(), re.M)}


def pod_files(objects: list[dict[str, Any]]) -> dict[str, str]:
    """conf.d/* and the ConfigMap's mounted files of the chat-ui pod, by their path in the pod."""
    deployment = next(
        m for m in objects if m["kind"] == "Deployment" and m["metadata"]["name"] == "llama-chat-ui"
    )
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "nginx")
    env = dockerfile_env() | {e["name"]: e["value"] for e in container["env"]}
    folder = env.pop("NGINX_ENVSUBST_TEMPLATE_DIR", "/etc/nginx/templates")
    data = next(
        m for m in objects if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "llama-chat-ui"
    )["data"]
    shell_format = " ".join(f"${{{name}}}" for name in env)
    files = {
        f"/etc/nginx/conf.d/{t.name.removesuffix('.template')}": subprocess.run(
            [shutil.which("envsubst") or "envsubst", shell_format], input=t.read_text(), env=env, capture_output=True, text=True, check=True
        ).stdout
        for t in dockerfile_templates(folder)
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    for volume in pod["volumes"]:
        if volume.get("configMap", {}).get("name") == "llama-chat-ui":
            for item in volume["configMap"]["items"]:
                files[f"{mounts[volume['name']]}/{item['path']}"] = data[item["key"]]
    return files


@pytest.fixture
def html(tmp_path: Path) -> Path:
    (tmp_path / "html" / "assets").mkdir(parents=True)
    (tmp_path / "html" / "index.html").write_text('<!doctype html><div id="root"></div>')
    (tmp_path / "html" / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path / "html"


@pytest.mark.chart
def test_make_up_writes_the_charts_nginx_config_with_only_the_documented_substitutions(
    tmp_path: Path, html: Path
) -> None:
    if shutil.which("envsubst") is None:
        pytest.skip("gettext's envsubst is not installed (Debian: gettext-base); it renders the pod's config")
    cluster = pod_files(chart.render([], extra_values=cases.with_image_registry([])))
    port = 13000
    run = tmp_path / "run"
    ui_nginx.write_config(run, html, port, ui_nginx.render_chart_ui(LOCAL_API), model_note=NOTE)

    moves = ui_nginx.local_paths(run, html.resolve(), port, https_port=None)
    # chat-ui.apiProxy.upstream: the chart's in-cluster chat-api, the local one here.
    upstreams = set(re.findall(r"proxy_pass (\S+);", cluster["/etc/nginx/extra/api-proxy.conf"]))
    assert len(upstreams) == 1, upstreams
    moves[upstreams.pop()] = LOCAL_API
    # Where each pod file lies locally (ui/Dockerfile and the chart's mounts -> the run folder).
    local_path = {
        "/etc/nginx/conf.d/": run / "conf.d",
        "/etc/nginx/extra/": run / "extra",
        "/usr/share/nginx/config/": run / "config",
    }
    whole = "".join(cluster.values())
    for needed in ("listen 8080", "root /usr/share/nginx/html;", "/usr/share/nginx/config/config.json",
                   "/etc/nginx/extra/*.conf", "/var/log/nginx/access.log"):  # fmt: skip
        assert needed in whole, f"the pod's config no longer has {needed!r}: update ui_nginx.local_paths"

    written = {p for p in run.rglob("*") if p.is_file() and p.name != "nginx.conf"}
    compared = set()
    for pod_path, text in cluster.items():
        folder, name = pod_path.rsplit("/", 1)
        local = local_path[f"{folder}/"] / name
        compared.add(local)
        if name == "config.json":
            # The one addition: what the UI says about the demo model `make up` serves.
            assert json.loads(local.read_text()) == {**json.loads(text), "modelNote": NOTE}
            continue
        expected = text
        for old, new in moves.items():
            expected = expected.replace(old, new)
        diff = "".join(difflib.unified_diff(expected.splitlines(True), local.read_text().splitlines(True)))
        assert not diff, f"{local} differs from the pod's {pod_path} beyond the documented substitutions:\n{diff}"
    assert written == compared, f"files only one side has: {written ^ compared}"
    main = (run / "nginx.conf").read_text()
    assert f"include {run}/conf.d/*.conf;" in main and "add_header" not in main and "location" not in main


class ChatApiReadyzDouble(BaseHTTPRequestHandler):
    """A double of chat-api's /readyz only (any path echoes itself): this test is about nginx's side
    of the proxy; tests/e2e and tests/integration run real chat-api behind the same nginx."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "origin": self.headers.get("Origin")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, html: Path) -> Iterator[str]:
    try:
        ui_nginx.nginx_binary()
    except ui_nginx.NginxMissing as exc:
        pytest.skip(str(exc))
    api = ThreadingHTTPServer(("127.0.0.1", 0), ChatApiReadyzDouble)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    port = free_port()
    upstream = f"http://127.0.0.1:{api.server_address[1]}"
    proc = ui_nginx.start_ui_nginx(tmp_path / "run", html, port, upstream, tmp_path / "nginx.log", NOTE)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        api.shutdown()


@pytest.mark.integration
def test_local_nginx_serves_the_page_and_proxies_the_api_on_one_origin(served: str) -> None:
    config = httpx.get(f"{served}/config.json")
    assert config.json()["apiBaseUrl"] == "" and config.json()["modelNote"] == NOTE
    assert config.headers["cache-control"] == "no-cache"
    page = httpx.get(f"{served}/some/conversation")
    assert page.status_code == 200 and 'id="root"' in page.text
    assert "connect-src 'self';" in page.headers["content-security-policy"]
    assert "access-control-allow-origin" not in page.headers
    asset = httpx.get(f"{served}/assets/index-abc123.js")
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(f"{served}/assets/gone-123.js").status_code == 404
    proxied = httpx.get(f"{served}/readyz")
    assert proxied.status_code == 200 and proxied.json()["path"] == "/readyz"
    # DNS rebinding: a name that is not ours gets no answer, as in the cluster.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{served}/config.json", headers={"Host": "evil.example"})
