"""scripts/bench.py measures what it says against real vLLM and chat-api, and behaves as a
well-mannered client while doing it (reads each stream to its end, so nothing looks cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from scripts.bench import run_level

pytestmark = pytest.mark.integration


def test_a_bench_level_through_chat_api_counts_exact_tokens_and_cancels_nothing(vllm_server, chat_api):
    cancelled_before = chat_api.metric_value("chat_api_cancellations_total")
    result = asyncio.run(run_level("chat-api", chat_api.base_url, vllm_server.served_name, 2, 4, 8, None))
    assert (result.requests, result.errors) == (4, 0), result.error_examples
    # ignore_eos makes every request generate exactly max_tokens, so tokens/s compares like for like.
    assert result.tokens_per_s == pytest.approx(4 * 8 / result.wall_s, rel=0.01)
    assert 0 < result.ttft_ms["p50"] <= result.e2e_ms["p50"]
    assert result.itl_ms["p50"] > 0
    assert chat_api.metric_value("chat_api_cancellations_total") == cancelled_before
