"""Test double of the upstream model server: `FakeOpenAIUpstream`.

A double, not the real thing: the tiny real model replies random tokens, so a test that needs one
exact reply (markup the UI must show as text) puts this small OpenAI-compatible server where vLLM
would be, and a real chat-api in front of it. It speaks only what chat-api asks of vLLM: GET /health,
GET /v1/models, POST /v1/chat/completions (streamed), as strictly as vLLM 0.32 in what the UI relies on:

- /v1/models lists the model with its `max_model_len` (vllm/entrypoints/openai/models/protocol.py);
- a request for another model is refused with 404 "The model `x` does not exist." (NotFoundError);
- a prompt longer than the context is refused with 400 and vLLM's wording from
  vllm/renderers/params.py ("your prompt contains N input tokens"), counting `chars_per_token`
  characters a token; max_tokens is clamped to what the prompt leaves (get_max_tokens), as vLLM does.

It has no "loading" mode: real vLLM does not listen at all until its model is loaded, so the cold
start is tested with a real vLLM started after the UI (test_chat_ui_daily_use.py).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAIUpstream:
    """Streams `reply` in small pieces for every chat request it accepts (see the module doc for refusals).

    `break_after`: when set, the stream of the next chat request stops after that many pieces and the
    connection is closed without a finish chunk or [DONE] (a model server dying mid-answer); later
    requests stream in full again.
    """

    def __init__(
        self,
        reply: str,
        model: str = "double-model",
        piece_chars: int = 6,
        delay_s: float = 0.02,
        max_model_len: int = 2048,
        chars_per_token: float = 4.0,
    ) -> None:
        self.reply = reply
        self.model = model
        self.piece_chars = piece_chars
        self.delay_s = delay_s
        self.max_model_len = max_model_len
        self.chars_per_token = chars_per_token
        self.break_after: int | None = None
        self.requests: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        #: streams the client closed before their end (Stop, or a deleted conversation)
        self.disconnects = 0
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

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """Prompt tokens at `chars_per_token`, plus a Llama-3-like template (5 a message, 30 a request)."""
        messages = body.get("messages") or []
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        return int(chars / self.chars_per_token) + 5 * len(messages) + 30

    def _refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """vLLM's refusals that the UI must handle: unknown model (404), prompt over the context (400)."""
        if body.get("model") not in (None, self.model):
            message = f"The model `{body.get('model')}` does not exist."
            return 404, {"message": message, "type": "NotFoundError", "param": "model", "code": 404}
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > self.max_model_len:
            message = (
                f"max_tokens={max_tokens} cannot be greater than max_model_len={self.max_model_len}. "
                "Please request fewer output tokens."
            )
            return 400, {"message": message, "type": "BadRequestError", "param": "max_tokens", "code": 400}
        prompt = self.prompt_tokens(body)
        if prompt > self.max_model_len:
            message = (
                f"This model's maximum context length is {self.max_model_len} tokens. However, your prompt "
                f"contains {prompt} input tokens, which exceeds this limit even without any output tokens. "
                "Please reduce the length of the input prompt."
            )
            return 400, {"message": message, "type": "BadRequestError", "param": "input_tokens", "code": 400}
        return None

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
                    return self._json(200, {})
                if self.path == "/v1/models":
                    card = {"id": double.model, "object": "model", "max_model_len": double.max_model_len}
                    return self._json(200, {"object": "list", "data": [card]})
                return self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": "not found"}})
                refusal = double._refusal(body)
                if refusal:
                    double.refused.append(body)
                    return self._json(refusal[0], {"error": refusal[1]})
                double.requests.append(body)
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
                    prompt = double.prompt_tokens(body)
                    usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
                    self._send_data({"id": "chatcmpl-double", "object": "chat.completion.chunk",
                                     "model": double.model, "choices": [], "usage": usage})  # fmt: skip
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    double.disconnects += 1  # the client went away (Stop): that is allowed
                self.close_connection = True

            def _chunk(self, choice: dict[str, Any]) -> None:
                self._send_data({"id": "chatcmpl-double", "object": "chat.completion.chunk",
                                 "model": double.model, "choices": [{"index": 0, **choice}]})  # fmt: skip

            def _send_data(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        return Handler
