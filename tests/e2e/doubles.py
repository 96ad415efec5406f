"""Test double of the upstream model server: `FakeOpenAIUpstream`.

A double, not the real thing: the tiny real model replies random tokens, so a test that needs one
exact reply (markup the UI must show as text) or a model that is still loading puts this small
OpenAI-compatible server where vLLM would be, and a real chat-api in front of it. It speaks only
what chat-api asks of vLLM: GET /health, GET /v1/models, POST /v1/chat/completions (streamed).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAIUpstream:
    """Streams `reply` in small pieces for every chat request; answers /health 503 while not `ready`.

    `break_after`: when set, the stream of the next chat request stops after that many pieces and the
    connection is closed without a finish chunk or [DONE] (a model server dying mid-answer); later
    requests stream in full again.
    """

    def __init__(
        self, reply: str, model: str = "double-model", piece_chars: int = 6, delay_s: float = 0.02
    ) -> None:
        self.reply = reply
        self.model = model
        self.piece_chars = piece_chars
        self.delay_s = delay_s
        self.ready = True
        self.break_after: int | None = None
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeOpenAIUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _json(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    return self._json(200 if double.ready else 503, {})
                if self.path == "/v1/models":
                    if not double.ready:
                        return self._json(503, {"error": {"message": "loading"}})
                    models = [{"id": double.model, "object": "model"}]
                    return self._json(200, {"object": "list", "data": models})
                return self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                double.requests.append(body)
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": "not found"}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                step = double.piece_chars
                pieces = [double.reply[i : i + step] for i in range(0, len(double.reply), step)]
                cut, double.break_after = double.break_after, None
                try:
                    for index, piece in enumerate(pieces):
                        if cut is not None and index == cut:
                            self.close_connection = True
                            return
                        self._chunk({"delta": {"content": piece}, "finish_reason": None})
                        time.sleep(double.delay_s)
                    self._chunk({"delta": {}, "finish_reason": "stop"})
                    n = len(pieces)
                    usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
                    self._send_data({"id": "chatcmpl-double", "object": "chat.completion.chunk",
                                     "model": double.model, "choices": [], "usage": usage})  # fmt: skip
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (Stop): that is allowed
                self.close_connection = True

            def _chunk(self, choice: dict[str, Any]) -> None:
                self._send_data({"id": "chatcmpl-double", "object": "chat.completion.chunk",
                                 "model": double.model, "choices": [{"index": 0, **choice}]})  # fmt: skip

            def _send_data(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        return Handler
