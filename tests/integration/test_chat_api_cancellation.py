"""A Stop or a client that goes away closes the upstream request, and real vLLM aborts it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.chat_helpers import LONG_MAX_TOKENS, LONG_PROMPT, SUCCESS, long_openai_body, sse_events

pytestmark = pytest.mark.integration


@dataclass
class VllmCounts:
    """What vLLM has finished and generated so far; an aborted request adds to neither success count.

    vLLM 0.32 drops a client-aborted request from its output processor before the stats are
    recorded, so `vllm:request_success_total{finished_reason="abort"}` stays 0 for it (checked in
    vllm/v1/engine/output_processor.py `abort_requests`). What proves the abort instead: running
    drops to 0 at once, no finished request of any reason is added, and vLLM generated far fewer
    tokens than the request asked for.
    """

    finished: float
    generated: float

    @classmethod
    def of(cls, vllm_server) -> VllmCounts:
        return cls(
            vllm_server.metric_value(SUCCESS), vllm_server.metric_value("vllm:generation_tokens_total")
        )


def _assert_upstream_aborted(vllm_server, chat_api, before: VllmCounts, route: str, cancels_before: float):
    started = time.monotonic()
    vllm_server.wait_metric("vllm:num_requests_running", lambda v: v == 0, timeout=10)
    stopped_after = time.monotonic() - started
    after = VllmCounts.of(vllm_server)
    # It did not run to its end: not finished (any reason), and short of its max_tokens. How far
    # short depends on how fast this machine is at that moment (the tiny model makes hundreds of
    # tokens a second; on a loaded CI machine the abort once landed after 1299 of 1500), so the
    # bound is the request's own length, not a fraction of it.
    assert after.finished == before.finished, "vLLM finished the request instead of aborting it"
    assert after.generated - before.generated < LONG_MAX_TOKENS
    # And it stays stopped: no tokens keep coming for it.
    time.sleep(0.5)
    assert vllm_server.metric_value("vllm:generation_tokens_total") == after.generated
    assert stopped_after < 10
    chat_api.wait_metric("chat_api_inflight_streams", lambda v: v == 0, timeout=5)
    assert chat_api.metric_value("chat_api_cancellations_total", route=route) == cancels_before + 1


def test_client_disconnect_on_openai_stream_aborts_the_vllm_request(chat_api, vllm_server):
    route = "/v1/chat/completions"
    before = VllmCounts.of(vllm_server)
    cancels = chat_api.metric_value("chat_api_cancellations_total", route=route)
    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", f"{chat_api.base_url}{route}", json=long_openai_body(vllm_server.served_name)
        ) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            got = [line for _, line in zip(range(6), lines, strict=False) if line]
            assert got
            # The stream is live on vLLM right now.
            assert vllm_server.metric_value("vllm:num_requests_running") == 1
        # Leaving the block closes the connection mid-stream, like a browser tab closing.
    _assert_upstream_aborted(vllm_server, chat_api, before, route, cancels)


def test_stop_in_browser_over_sse_aborts_the_vllm_request(chat_api, vllm_server):
    route = "/api/chat"
    before = VllmCounts.of(vllm_server)
    cancels = chat_api.metric_value("chat_api_cancellations_total", route=route)
    body = {"messages": LONG_PROMPT, "max_tokens": LONG_MAX_TOKENS, "temperature": 0}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{chat_api.base_url}{route}", json=body) as r:
            events = sse_events(r)
            assert next(events)[0] == "delta"
            assert next(events)[0] == "delta"
        # fetch() aborted by the Stop button == the connection closes.
    _assert_upstream_aborted(vllm_server, chat_api, before, route, cancels)
