"""chat-api's own cost per streamed request, without vLLM's noise: CPU seconds per 1000 requests, or
instructions per request under callgrind (load-independent, for a shared machine).

    python -m scripts.relay_cost                      # 1000 streams of 64 tokens, 16 at a time
    python -m scripts.relay_cost --callgrind -n 100   # instructions per request (valgrind, minutes)
    python -m scripts.relay_cost --chat-api-dir DIR   # another checkout's services/chat-api (before/after)
    python -m scripts.relay_cost --first-byte -n 500  # latency chat-api adds before the first byte, 1 stream
    python -m scripts.relay_cost --first-token -n 500 # ... before the first token, after a 12 ms "prefill"
                                                      # (read with httpx, as the bench's users read)

A token source stands in for vLLM: it answers every POST like vLLM 0.32's streaming chat
completion (chunked SSE, one HTTP chunk per token written 2 ms apart, then the usage chunk and
[DONE]), so chat-api reads each token on its own as it does from a real vLLM. It is not a test
double of vLLM's behaviour (the findings tests have that, services/chat-api/tests/crafted_upstream.py):
it only makes the relay's work repeatable. chat-api runs as `python -m chat_api`; the token source
and the load generator are separate processes, so chat-api's /proc CPU time is its own.
Imports nothing from chat-api.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from scripts.tiny_model import SERVED_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
CHUNK_ID = "chatcmpl-9f3a1c2b7e8d4a6f"


def chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def sse(obj: object) -> bytes:
    return (
        b"data: "
        + (obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode())
        + b"\n\n"
    )


def completion_chunk(delta: dict[str, str]) -> dict[str, object]:
    return {"id": CHUNK_ID, "object": "chat.completion.chunk", "created": 1764583200, "model": SERVED_NAME,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}  # fmt: skip


async def token_source(port: int, tokens: int, gap_s: float, prefill_s: float = 0.0) -> None:
    """With `prefill_s`, the head goes out at once and the first token that much later, right
    after the role chunk, as vLLM sends them (its head before the prefill, both chunks in the step
    that makes the first token)."""
    head = (b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip
    first = chunk(sse(completion_chunk({"role": "assistant", "content": ""})))
    words = [chunk(sse(completion_chunk({"content": f" tok{i}"}))) for i in range(tokens)]
    usage = {"prompt_tokens": 12, "total_tokens": 12 + tokens, "completion_tokens": tokens}
    end = chunk(sse({"id": CHUNK_ID, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
    end += chunk(sse(b"[DONE]")) + b"0\r\n\r\n"
    models = json.dumps({"object": "list", "data": [{"id": SERVED_NAME, "object": "model"}]}).encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in request.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                if request.startswith(b"POST"):
                    if prefill_s:
                        writer.write(head)
                        await asyncio.sleep(prefill_s)
                        writer.write(first)
                    else:
                        writer.write(head + first)
                    for i, word in enumerate(words):
                        if i or not prefill_s:  # after a prefill the first token follows the role chunk
                            await asyncio.sleep(gap_s)
                        writer.write(word)
                    writer.write(end)
                    await writer.drain()
                elif b"/v1/models" in request.split(b"\r\n", 1)[0]:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                    writer.write(b"content-length: %d\r\n\r\n" % len(models) + models)
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


def streamed_request(max_tokens: int) -> bytes:
    """One streamed /v1 chat completion as raw HTTP/1.1, ready to write to a keep-alive connection."""
    messages = [{"role": "user", "content": "Tell me a long story"}]
    body = json.dumps(
        {"model": SERVED_NAME, "messages": messages, "stream": True, "max_tokens": max_tokens}
    ).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


async def load(port: int, requests: int, concurrency: int, tokens: int) -> tuple[int, int]:
    """`requests` streamed /v1 chat completions over `concurrency` keep-alive connections: (ok, errors)."""
    request = streamed_request(tokens)
    left, counts = [requests], {"ok": 0, "errors": 0}

    async def user() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            answer = bytearray()
            while not answer.endswith(b"\r\n0\r\n\r\n"):
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("chat-api closed the connection")
                answer += data
            counts["ok" if b"data: [DONE]" in answer else "errors"] += 1
        writer.close()

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return counts["ok"], counts["errors"]


FIRST_TOKEN = b'" tok0"'  # the first token's content, as JSON in its chunk


async def first_token_ms(port: int, requests: int) -> list[float]:
    """Milliseconds from sending a streamed request to its first token, one request at a time, read
    by an httpx client as the bench's users (and the OpenAI SDK) read: it parses the head when the
    head comes, so where the head comes counts too."""
    body = streamed_request(1).partition(b"\r\n\r\n")[2]
    headers = {"content-type": "application/json"}
    out = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10) as client:
        for _ in range(requests):
            started, answer, first = time.perf_counter(), bytearray(), None
            async with client.stream(
                "POST", "/v1/chat/completions", content=body, headers=headers
            ) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"port {port} answered {response.status_code}")
                async for data in response.aiter_raw():
                    answer += data
                    if first is None and FIRST_TOKEN in answer:
                        first = time.perf_counter()
            if first is None:
                raise RuntimeError(f"port {port} sent no first token: {bytes(answer[-300:])!r}")
            out.append(1000 * (first - started))
    return out


async def first_byte_ms(port: int, requests: int) -> list[float]:
    """Milliseconds from sending a streamed request to its first response bytes, one at a time."""
    request = streamed_request(1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for _ in range(requests):
        started = time.perf_counter()
        writer.write(request)
        try:
            answer = bytearray(await asyncio.wait_for(reader.read(65536), 10))
        except TimeoutError:
            raise RuntimeError(f"port {port} did not answer request {len(out) + 1}") from None
        out.append(1000 * (time.perf_counter() - started))
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"port {port} answered {bytes(answer[:200])!r}")
        while not answer.endswith(b"\r\n0\r\n\r\n"):
            try:
                data = await asyncio.wait_for(reader.read(65536), 10)
            except TimeoutError:
                tail = bytes(answer[-300:])
                raise RuntimeError(f"port {port} stalled after {len(out)} answers: {tail!r}") from None
            if not data:
                raise ConnectionError("the connection closed mid-answer")
            answer += data
    writer.close()
    return out


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_healthy(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"chat-api exited with {process.returncode} before it answered /healthz")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"chat-api did not answer /healthz on :{port} within {timeout_s:g} s")


def report_first_byte(
    api_port: int,
    source_port: int,
    requests: int,
    measure: Callable[[int, int], Awaitable[list[float]]] = first_byte_ms,
    label: str = "first byte",
) -> int:
    """Blocks of 50 alternate between the arms, so drift hits both; medians of all samples."""
    samples: dict[str, list[float]] = {"direct": [], "chat-api": []}
    for block in range(max(1, requests // 50)):
        order = [("direct", source_port), ("chat-api", api_port)]
        for name, port in order if block % 2 == 0 else order[::-1]:
            samples[name] += asyncio.run(measure(port, 50))
    direct, through = (statistics.median(samples[k]) for k in ("direct", "chat-api"))
    print(
        f"{label}, 1 stream, {len(samples['direct'])} requests per arm: direct "
        f"{direct:.2f} ms, through chat-api {through:.2f} ms (median): "
        f"chat-api adds {through - direct:.2f} ms"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=1000)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--port", type=int, default=26000, help="chat-api's port; the token source uses +1")
    parser.add_argument("--chat-api-dir", type=Path, default=REPO_ROOT / "services" / "chat-api")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind) instead")
    parser.add_argument(
        "--first-byte",
        action="store_true",
        help="instead: the time to the first response byte, direct to the token source and through "
        "chat-api, one request at a time in alternating blocks (what chat-api adds to TTFT without "
        "vLLM's noise)",
    )
    parser.add_argument(
        "--first-token",
        action="store_true",
        help="instead: the same for the first token, which the token source sends --prefill-ms after "
        "its head, as vLLM does (what chat-api adds to the bench's 1-stream TTFT)",
    )
    parser.add_argument("--prefill-ms", type=float, default=12.0, help="with --first-token (default 12)")
    parser.add_argument("--serve-tokens", type=int, help=argparse.SUPPRESS)  # the token source's own process
    args = parser.parse_args(argv)
    if args.serve_tokens:
        prefill_s = args.prefill_ms / 1000 if args.first_token else 0.0
        asyncio.run(token_source(args.serve_tokens, args.tokens, 0.002, prefill_s))
        return 0
    if args.first_byte or args.first_token:
        args.tokens = 1  # only the first bytes count; short answers keep a run under a minute
    if args.prefill_ms < 0:
        parser.error(f"--prefill-ms {args.prefill_ms:g}: give 0 or more milliseconds")
    source_port = args.port + 1
    prefill = ["--first-token", "--prefill-ms", str(args.prefill_ms)] if args.first_token else []
    source = subprocess.Popen([sys.executable, "-m", "scripts.relay_cost", "--serve-tokens", str(source_port),
                               "--tokens", str(args.tokens), *prefill], cwd=REPO_ROOT)  # fmt: skip
    # `python -m chat_api` in --chat-api-dir imports that tree's chat_api (the working directory
    # comes first on sys.path), so another checkout's chat-api can be measured too.
    env = {**os.environ, "CHAT_API_HOST": "127.0.0.1",
           "CHAT_API_PORT": str(args.port), "CHAT_API_UPSTREAM_URL": f"http://127.0.0.1:{source_port}",
           "CHAT_API_RATE_LIMIT_PER_MINUTE": "0", "CHAT_API_MAX_CONCURRENT_STREAMS": "512",
           "CHAT_API_QUEUE_SIZE": "512",
           # The measured requests carry no person, so no history: no database file in the cwd.
           "CHAT_API_DATABASE_URL": ""}  # fmt: skip
    out = REPO_ROOT / "build" / "relay_cost" / f"callgrind.{os.getpid()}"
    command = [str(PYTHON), "-m", "chat_api"]
    if args.callgrind:
        # Valgrind runs chat-api some 50 times slower: connects and idle pooled connections must
        # not time out, or the count would include error paths.
        env.update({"CHAT_API_CONNECT_TIMEOUT_S": "120", "CHAT_API_FIRST_TOKEN_TIMEOUT_S": "600"})
        out.parent.mkdir(parents=True, exist_ok=True)
        # Instrumentation starts after the warm-up: the count is the requests' alone.
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            *command,
        ]
    api = subprocess.Popen(command, env=env, cwd=args.chat_api_dir, stdout=subprocess.DEVNULL)
    try:
        wait_healthy(args.port, 1800 if args.callgrind else 60, api)
        asyncio.run(load(args.port, 20, min(args.concurrency, 20), args.tokens))  # warm-up: pool, caches
        if args.callgrind:
            subprocess.run(["callgrind_control", "-i", "on", str(api.pid)], check=True, capture_output=True)
        if args.first_byte:
            return report_first_byte(args.port, source_port, args.requests)
        if args.first_token:
            label = f"first token after a {args.prefill_ms:g} ms prefill"
            return report_first_byte(args.port, source_port, args.requests, first_token_ms, label)
        before, started = cpu_s(api.pid), time.perf_counter()
        ok, errors = asyncio.run(load(args.port, args.requests, args.concurrency, args.tokens))
        used, wall = cpu_s(api.pid) - before, time.perf_counter() - started
        if args.callgrind:
            subprocess.run(["callgrind_control", "-i", "off", str(api.pid)], check=True, capture_output=True)
    finally:
        api.terminate()  # SIGTERM: chat-api drains (nothing is open) and exits
        api.wait(timeout=600)
        source.terminate()
        source.wait()
    print(
        f"{ok} streams of {args.tokens} tokens ({errors} errors) in {wall:.1f} s, "
        f"{args.concurrency} at a time"
    )
    if args.callgrind:
        # callgrind writes `summary: 0` in the header when it starts uninstrumented; `totals:` is right.
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")][-1]
        instructions = int(totals.split()[1])
        print(f"chat-api: {instructions / args.requests / 1e6:.2f} M instructions per request ({out})")
    else:
        print(f"chat-api: {1000 * used / args.requests:.2f} CPU s per 1000 requests")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
