"""The UI served locally by real nginx with the configuration the chat-ui chart deploys.

`make up` and the e2e tier run the same topology as the cluster: the browser talks to one origin,
nginx serves ui/dist and proxies /api/, /v1/, /auth/ and /readyz to chat-api (no CORS). Nothing
here restates that configuration; it is assembled from its two sources of truth:

- the image's nginx templates (ui/nginx/*.template, copied into the image by ui/Dockerfile), filled
  in the way the image's entrypoint does (docker-nginx's 20-envsubst-on-templates.sh) with the
  environment the chart gives the nginx container (its Deployment: CHAT_UI_CSP_CONNECT_SRC,
  CHAT_UI_SERVER_NAMES);
- the chart's chat-ui ConfigMap, rendered by Helm's engine (scripts/chart.py): config.json and the
  API proxy (api-proxy.conf), with `chat-ui.apiProxy.upstream` pointed at the local chat-api.

The only differences from a pod are the substitutions in `local_paths` (where a pod has its
mounts and port 8080, a local run has a folder of its own and a loopback port) and, in
config.json, `modelNote` (what the UI says about the demo model `make up` serves).
tests/ui/test_local_ui_nginx.py diffs the two.
"""

from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from scripts import chart
from scripts.local_run.process import REPO_ROOT, ManagedProcess, StartupError, http_ok

NGINX_DIR = REPO_ROOT / "ui" / "nginx"
# The image's two template folders (ui/Dockerfile): plain HTTP, and HTTPS (chat-ui.tls.enabled),
# which the chart selects with NGINX_ENVSUBST_TEMPLATE_DIR.
IMAGE_TEMPLATE_DIRS = {"/etc/nginx/templates": NGINX_DIR, "/etc/nginx/templates-tls": NGINX_DIR / "tls"}
# Included by both default.conf files; the Dockerfile copies them into both template folders.
SHARED_TEMPLATES = ("chat-ui-http.inc.template", "chat-ui-site.inc.template")
RELEASE = "llama"
NAMESPACE = "llama"
# The chart refuses to render without the registry `make images` pushed to; nginx pulls no image
# locally, so any name does.
LOCAL_VALUES: dict[str, Any] = {"global": {"image": {"registry": "local.invalid"}}}
READY_TIMEOUT_S = 20.0

# The parts of nginx-unprivileged's /etc/nginx/nginx.conf (the image's base) that matter, with
# writable paths: pid, temp folders and logs under the run folder. One process, no master: the
# local run records one PID per part, and a master killed outright (a crash, `kill -9`) would leave
# its workers serving the port, so the next `make up` could not start the UI again.
MAIN_CONF = """\
master_process off;
daemon off;
pid {run}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    include {mime_types};
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


class NginxMissing(RuntimeError):
    """nginx is not installed; the message says how to install it."""


@dataclass(frozen=True)
class ChartUi:
    """What the chart gives chat-ui's nginx container."""

    files: dict[str, str]  # the ConfigMap's data: config.json, api-proxy.conf, acme-challenge.conf
    env: dict[str, str]  # the container's env (what the image's envsubst step reads)


@dataclass(frozen=True)
class UiNginxConfig:
    """A written local configuration: `nginx -c main -p run` serves it on `port`."""

    run: Path
    main: Path
    port: int
    https_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        raise NginxMissing(
            "nginx is not installed; the UI is served by nginx with the chart's configuration. "
            "Install it: apt-get install nginx-light (Debian/Ubuntu) or brew install nginx (macOS)"
        )
    return found


@cache
def mime_types(nginx: str) -> str:
    """The mime.types next to this nginx's own nginx.conf (Debian /etc/nginx, Homebrew elsewhere)."""
    out = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"--conf-path=(\S+)", out.stderr + out.stdout)
    conf_dir = Path(match.group(1)).parent if match else Path("/etc/nginx")
    return str(conf_dir / "mime.types")


def render_chart_ui(api_upstream: str, values: Mapping[str, Any] | None = None) -> ChartUi:
    """chat-ui's ConfigMap data and nginx env as the chart renders them, with its API proxy
    pointed at `api_upstream` and umbrella `values` on top (e.g. TLS or sign-in on)."""
    layer = chart.deep_merge(LOCAL_VALUES, values or {})
    layer = chart.deep_merge(layer, {"chat-ui": {"apiProxy": {"upstream": api_upstream}}})
    objects = chart.render([], release=RELEASE, namespace=NAMESPACE, extra_values=layer)
    return chart_ui_of(objects)


def chart_ui_of(objects: list[dict[str, Any]]) -> ChartUi:
    """chat-ui's ConfigMap data and nginx env out of a rendered release."""

    def ui(kind: str) -> dict[str, Any]:
        return next(
            m
            for m in objects
            if m["kind"] == kind
            and m["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "chat-ui"
        )

    container = next(
        c for c in ui("Deployment")["spec"]["template"]["spec"]["containers"] if c["name"] == "nginx"
    )
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    return ChartUi(files=dict(ui("ConfigMap")["data"]), env=env)


def envsubst(template: str, env: Mapping[str, str]) -> str:
    """What docker-nginx's 20-envsubst-on-templates.sh does to a template (gettext `envsubst` given
    the names of the variables that are set): `$NAME` and `${NAME}` of those variables are
    replaced, every other `$` (nginx's own `$host`, `$uri`) is left alone."""
    if "$$" in template:
        raise ValueError("a template holds `$$`, which envsubst keeps and string.Template would not")
    return string.Template(template).safe_substitute(env)


def image_conf_d(chart_ui: ChartUi) -> dict[str, str]:
    """The files the image's entrypoint writes into /etc/nginx/conf.d, with the chart's env."""
    # The chart sets every variable the templates read (the image's ENV defaults never apply).
    env = {k: v for k, v in chart_ui.env.items() if k != "NGINX_ENVSUBST_TEMPLATE_DIR"}
    folder = IMAGE_TEMPLATE_DIRS[chart_ui.env.get("NGINX_ENVSUBST_TEMPLATE_DIR", "/etc/nginx/templates")]
    templates = [folder / "default.conf.template", *(NGINX_DIR / name for name in SHARED_TEMPLATES)]
    return {t.name.removesuffix(".template"): envsubst(t.read_text(), env) for t in templates}


def local_paths(run: Path, html: Path, port: int, https_port: int | None) -> dict[str, str]:
    """Pod path or port -> local one: the documented substitutions, and the only ones. The pod's
    paths come from ui/Dockerfile (html, templates) and the chart's volume mounts."""
    moves = {
        "listen 8080": f"listen 127.0.0.1:{port}",
        "root /usr/share/nginx/html;": f"root {html};",
        "/usr/share/nginx/config/config.json": str(run / "config" / "config.json"),
        "/etc/nginx/extra/*.conf": f"{run}/extra/*.conf",
        "/etc/nginx/extra-http/*.conf": f"{run}/extra-http/*.conf",
        "/etc/nginx/conf.d/": f"{run}/conf.d/",
        "/etc/nginx/tls": str(run / "tls"),
        "/var/log/nginx/access.log": f"{run}/access.log",
    }
    if https_port is not None:
        moves["listen 8443"] = f"listen 127.0.0.1:{https_port}"
    return moves


def write_config(
    run: Path,
    html: Path,
    port: int,
    chart_ui: ChartUi,
    model_note: str = "",
    https_port: int | None = None,
) -> UiNginxConfig:
    """Write the pod's nginx configuration, moved to `run` and `port`, serving `html`. `run` is
    emptied first: the configuration is rendered afresh at every start, like a pod's."""
    if run.exists():
        shutil.rmtree(run)
    for sub in ("conf.d", "extra", "extra-http", "config", "tls"):
        (run / sub).mkdir(parents=True)
    config = json.loads(chart_ui.files["config.json"])
    if model_note:
        config["modelNote"] = model_note  # what the UI says about the model (the chart has no such value)
    (run / "config" / "config.json").write_text(json.dumps(config, indent=2))
    if "api-proxy.conf" in chart_ui.files:
        (run / "extra" / "api-proxy.conf").write_text(chart_ui.files["api-proxy.conf"])
    if "acme-challenge.conf" in chart_ui.files:
        (run / "extra-http" / "acme-challenge.conf").write_text(chart_ui.files["acme-challenge.conf"])
    files = image_conf_d(chart_ui)
    for old, new in local_paths(run, html.resolve(), port, https_port).items():
        files = {name: text.replace(old, new) for name, text in files.items()}
    for name, text in files.items():
        (run / "conf.d" / name).write_text(text)
    main = run / "nginx.conf"
    # Without a master process nginx never switches users: it reads the checkout as whoever runs it.
    main.write_text(MAIN_CONF.format(run=run, mime_types=mime_types(nginx_binary())))
    return UiNginxConfig(run=run, main=main, port=port, https_port=https_port)


def check_dist(html: Path) -> None:
    if not (html / "index.html").is_file():
        raise FileNotFoundError(
            f"{html}/index.html is missing: build the UI first (`make ui/dist/index.html`, "
            "or `cd ui && npm ci && npm run build`)"
        )


def start(config: UiNginxConfig, log_path: Path, wait: bool = True) -> ManagedProcess:
    """Run nginx on a written configuration (checked with `nginx -t` first, so a bad one fails
    with nginx's own words); by default wait until its /healthz answers."""
    nginx = nginx_binary()
    argv = [nginx, "-c", str(config.main), "-p", str(config.run)]
    check = subprocess.run([nginx, "-t", *argv[1:]], capture_output=True, text=True)
    if check.returncode != 0:
        raise StartupError(f"nginx -t rejects the UI's configuration in {config.run}:\n{check.stderr}")
    proc = ManagedProcess(
        name=f"nginx:{config.port}",
        argv=argv,
        log_path=log_path,
    ).start()
    if wait:
        proc.wait_ready(
            http_ok(f"{config.url}/healthz"), timeout=READY_TIMEOUT_S, interval=0.2, stop_on_failure=True
        )
    return proc


def start_ui_nginx(
    run: Path,
    html: Path,
    port: int,
    api_upstream: str,
    log_path: Path,
    model_note: str = "",
    values: Mapping[str, Any] | None = None,
    wait: bool = True,
) -> ManagedProcess:
    """Serve `html` on 127.0.0.1:`port` with the chart's nginx configuration, proxying the API to
    `api_upstream` (same origin: the page's apiBaseUrl stays empty)."""
    check_dist(html)
    config = write_config(run, html, port, render_chart_ui(api_upstream, values), model_note)
    return start(config, log_path, wait=wait)
