"""The built chat UI (ui/dist) served locally, the way nginx serves it in the cluster.

    python -m scripts.local_run.ui --dist ui/dist --port 3000 --api-base-url http://127.0.0.1:8080

Serves `/config.json` from the given settings (the cluster's ConfigMap does that job there), falls
back to index.html for client-side paths, and sends the same caching headers and
Content-Security-Policy as ui/nginx/default.conf.template. `--model-note` becomes config.json's
`modelNote`: what the UI says about the model that answers (`make up` passes it). An API key, if
any, comes from the environment (CHAT_UI_API_KEY), never from argv.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from scripts.local_run.process import ManagedProcess, http_ok

API_KEY_ENV = "CHAT_UI_API_KEY"
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
READY_TIMEOUT_S = 30.0


def api_origin(api_base_url: str) -> str:
    """scheme://host[:port] of the API, or "" for same origin; anything else is refused with the fix."""
    if not api_base_url:
        return ""
    parts = urlsplit(api_base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(
            f"api_base_url={api_base_url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8080, "
            "or an empty string for the UI's own origin"
        )
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(api_base_url: str) -> str:
    """The strict policy nginx sends too: only our own scripts and styles; the API origin may be fetched."""
    connect = " ".join(filter(None, ["'self'", api_origin(api_base_url)]))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {connect}",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def runtime_config(api_base_url: str, api_key: str | None, title: str, model_note: str = "") -> bytes:
    config: dict[str, str] = {"apiBaseUrl": api_base_url, "title": title}
    if api_key:
        config["apiKey"] = api_key
    if model_note:
        # What the UI tells a user about the model that answers (a demo model, how to serve a bigger one).
        config["modelNote"] = model_note
    return json.dumps(config).encode()


def make_handler(dist: Path, config_body: bytes, csp: str) -> type[BaseHTTPRequestHandler]:
    root = dist.resolve()

    class Handler(BaseHTTPRequestHandler):
        server_version = "chat-ui-local"
        sys_version = ""

        def do_HEAD(self) -> None:
            self.respond(head=True)

        def do_GET(self) -> None:
            self.respond(head=False)

        def respond(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            if path == "/config.json":
                return self.send(HTTPStatus.OK, config_body, "application/json", NO_CACHE, head)
            target = (root / path.lstrip("/")).resolve()
            if root not in target.parents and target != root:
                return self.send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", NO_CACHE, head)
            if target.is_file():
                cache = IMMUTABLE if path.startswith("/assets/") else NO_CACHE
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                return self.send(HTTPStatus.OK, target.read_bytes(), kind, cache, head)
            # A missing file with an extension is a real 404 (a stale asset); any other path is a
            # client-side route: index.html.
            if "." in Path(path).name or path.startswith("/assets/"):
                return self.send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", NO_CACHE, head)
            index = root / "index.html"
            self.send(HTTPStatus.OK, index.read_bytes(), "text/html; charset=utf-8", NO_CACHE, head)

        def send(self, status: HTTPStatus, body: bytes, kind: str, cache: str, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.send_header("Content-Security-Policy", csp)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def check_dist(dist_dir: Path) -> None:
    if not (dist_dir / "index.html").is_file():
        raise FileNotFoundError(
            f"{dist_dir}/index.html is missing: build the UI first (`make ui/dist/index.html`, "
            "or `cd ui && npm ci && npm run build`)"
        )


def start_ui(
    dist_dir: Path,
    port: int,
    api_base_url: str,
    log_path: Path,
    api_key: str | None = None,
    title: str = "Llama Chat",
    model_note: str = "",
    host: str = "127.0.0.1",
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
) -> ManagedProcess:
    """Serve `dist_dir` on `host`:`port` and (by default) wait until /config.json answers.

    Like start_vllm and start_chat_api: the returned process is running; on failure it is stopped
    and `StartupError` carries the tail of its log.
    """
    check_dist(dist_dir)
    api_origin(api_base_url)  # refuse a bad URL here, with its fix, rather than in the child's log
    env = {API_KEY_ENV: api_key} if api_key else {}
    argv = [
        sys.executable, "-m", "scripts.local_run.ui",
        "--dist", str(dist_dir), "--port", str(port), "--host", host,
        "--api-base-url", api_base_url, "--title", title, "--model-note", model_note,
    ]  # fmt: skip
    proc = ManagedProcess(name=f"chat-ui:{port}", argv=argv, log_path=log_path, env=env).start()
    if wait:
        proc.wait_ready(
            http_ok(f"http://{host}:{port}/config.json"), timeout=timeout, interval=0.2, stop_on_failure=True
        )
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.local_run.ui", description=__doc__)
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-base-url", default="")
    parser.add_argument("--title", default="Llama Chat")
    parser.add_argument("--model-note", default="", help="config.json's modelNote, shown by the UI")
    args = parser.parse_args(argv)
    try:
        check_dist(args.dist)
        csp = content_security_policy(args.api_base_url)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = runtime_config(args.api_base_url, os.environ.get(API_KEY_ENV), args.title, args.model_note)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.dist, config, csp))
    api = args.api_base_url or "same origin"
    print(f"chat-ui serving {args.dist} on http://{args.host}:{args.port} (API {api})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
