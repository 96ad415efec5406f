"""A bounded soak: good clients and abusive ones at the same time against real chat-api and real
vLLM. Every good request succeeds, every abusive one is refused or cut off, and afterwards no
stream is left in flight and chat-api's memory has not grown."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.chat_helpers import LONG_PROMPT

pytestmark = pytest.mark.integration

WARMUP_S = 6.0
SOAK_S = 18.0
GOOD = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def good_ui(client: httpx.AsyncClient, base: str) -> str:
    async with client.stream("POST", f"{base}/api/chat", json=GOOD) as r:
        text = (await r.aread()).decode()
    return (
        "good" if r.status_code == 200 and "event: done" in text else f"BAD ui {r.status_code} {text[-200:]}"
    )


async def good_v1(client: httpx.AsyncClient, base: str, model: str) -> str:
    body = {**GOOD, "model": model, "stream": True}
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
        text = (await r.aread()).decode()
    return "good" if r.status_code == 200 and text.endswith("data: [DONE]\n\n") else f"BAD v1 {r.status_code}"


async def quitter(client: httpx.AsyncClient, base: str) -> str:
    body = {"messages": LONG_PROMPT, "max_tokens": 400, "temperature": 0}
    async with client.stream("POST", f"{base}/api/chat", json=body) as r:
        async for _ in r.aiter_raw():
            break  # and leave: the connection closes mid-stream
    return "quit"


async def raw(base: str, data: bytes, hold_s: float = 0.0) -> str:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(64), timeout=5 + hold_s)
    except TimeoutError:
        answer = b"<no answer>"
    writer.close()
    return "refused " + answer[9:12].decode(errors="replace")


async def abusive(client: httpx.AsyncClient, base: str, i: int) -> str:
    kind = i % 7
    if kind == 0:  # a body that never finishes arriving
        return await raw(
            base,
            b"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 900\r\n\r\n{",
        )
    if kind == 1:  # 50 MB declared
        return await raw(
            base,
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 52428800\r\n\r\n",
        )
    if kind == 2:
        r = await client.post(
            f"{base}/v1/chat/completions", content=json.dumps(GOOD), headers={"content-type": "text/plain"}
        )
    elif kind == 3:
        deep = b'{"messages": ' + b"[" * 20000 + b"]" * 20000 + b"}"
        r = await client.post(f"{base}/api/chat", content=deep, headers={"content-type": "application/json"})
    elif kind == 4:
        r = await client.post(
            f"{base}/v1/chat/completions", json={**GOOD, "ignore_eos": True, "min_tokens": 4000}
        )
    elif kind == 5:
        r = await client.post(f"{base}/v1/chat/completions?api_key=sk-x", json=GOOD)
    else:
        r = await client.post(f"{base}/v1/chat/completions", json={**GOOD, "n": 8, "max_tokens": 4096})
    return f"refused {r.status_code}"


async def soak(base: str, model: str, seconds: float) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def loop(role: int) -> None:
        i = role
        async with httpx.AsyncClient(timeout=60) as client:
            while time.monotonic() < deadline:
                if role % 4 == 0:
                    outcome = await good_ui(client, base)
                elif role % 4 == 1:
                    outcome = await good_v1(client, base, model)
                elif role % 4 == 2:
                    outcome = await quitter(client, base)
                else:
                    outcome = await abusive(client, base, i)
                outcomes[outcome] += 1
                i += 1

    await asyncio.gather(*(loop(role) for role in range(12)))
    return outcomes


def test_a_soak_of_good_and_abusive_clients_ends_with_nothing_in_flight_and_memory_flat(
    chat_api_factory, vllm_server
):
    api = chat_api_factory(
        env={"CHAT_API_RATE_LIMIT_PER_MINUTE": "0", "CHAT_API_BODY_TIMEOUT_S": "1"}, wait_ready=True
    )
    asyncio.run(soak(api.base_url, vllm_server.served_name, WARMUP_S))
    api.wait_metric("chat_api_inflight_streams", lambda v: v == 0, timeout=15)
    before = rss_mib(api.process.pid)
    outcomes = asyncio.run(soak(api.base_url, vllm_server.served_name, SOAK_S))
    bad = {k: v for k, v in outcomes.items() if k.startswith("BAD")}
    assert not bad, f"good clients failed during the soak: {bad} (all: {dict(outcomes)})"
    assert outcomes["good"] >= 10 and outcomes["quit"] >= 3, dict(outcomes)
    refused = {k for k in outcomes if k.startswith("refused")}
    assert refused <= {"refused 400", "refused 408", "refused 413", "refused 415"}, dict(outcomes)
    api.wait_metric("chat_api_inflight_streams", lambda v: v == 0, timeout=15)
    vllm_server.wait_metric("vllm:num_requests_running", lambda v: v == 0, timeout=15)
    after = rss_mib(api.process.pid)
    assert after - before < 20, f"chat-api grew from {before:.0f} to {after:.0f} MiB over the soak"
    assert api.metric_value("chat_api_cancellations_total") >= outcomes["quit"] * 0.5
