"""scripts/bench.py measures what it says against real vLLM and chat-api, and behaves as a
well-mannered client while doing it (reads each stream to its end, so nothing looks cancelled)."""

from __future__ import annotations

import argparse
import asyncio

import httpx
import pytest

from scripts.bench import (
    LevelResult,
    comparison,
    level_from_vllm_bench,
    nginx_hop,
    paired,
    parse_args,
    print_table,
    requests_for,
    round_order,
    run_level,
    side_by_side,
    vllm_bench_command,
)
from tests.fixtures.ui_nginx import skip_without_nginx


def level(tokens_per_s: float, ttft_p50_ms: float) -> LevelResult:
    ms = {"p50": ttft_p50_ms, "p90": ttft_p50_ms, "p99": ttft_p50_ms}
    return LevelResult("x", 16, 10, 0, 1.0, tokens_per_s, ms, ms, ms)


@pytest.mark.unit
def test_every_arm_takes_every_place_in_the_order_once_per_cycle() -> None:
    names = ["direct", "chat-api", "control"]
    orders = [round_order(names, r) for r in range(3)]
    assert all(sorted(o) == sorted(names) for o in orders)
    for place in range(3):
        assert sorted(o[place] for o in orders) == sorted(names)
    assert round_order(["direct", "chat-api"], 1) == ["chat-api", "direct"]


@pytest.mark.unit
def test_paired_figures_are_round_by_round_against_direct_with_their_spread() -> None:
    direct = [level(1000, 100), level(800, 120), level(900, 110)]
    chat_api = [level(950, 104), level(820, 121), level(855, 116)]
    control = [level(1010, 99), level(760, 126), level(900, 110)]
    report = {
        "results": {
            "direct": [{"concurrency": 16, "ttft_ms": {"p50": 110}, "tokens_per_s": 900, "errors": 0}],
            "chat-api": [{"concurrency": 16, "ttft_ms": {"p50": 116}, "tokens_per_s": 855, "errors": 0}],
        },
        "pairs": {"16": paired(chat_api, direct)},
        "control_pairs": {"16": paired(control, direct)},
    }
    [row] = comparison(report)
    assert row["paired_throughput_ratio_median"] == 0.95
    assert row["paired_throughput_ratio_range"] == [0.95, 1.025]
    assert row["paired_ttft_p50_delta_ms_median"] == 4.0
    assert row["control_throughput_ratio_median"] == 1.0
    assert row["control_throughput_ratio_range"] == [0.95, 1.01]
    assert row["control_ttft_p50_delta_ms_range"] == [-1.0, 6.0]


@pytest.mark.unit
def test_the_vllm_bench_driver_reads_vllm_bench_serves_detailed_result() -> None:
    # The fields `vllm bench serve --save-detailed` writes (vllm/benchmarks/serve.py, vLLM 0.32).
    result = {
        "duration": 2.0,
        "output_throughput": 96.0,
        "ttfts": [0.010, 0.030, 0.0],
        "itls": [[0.001, 0.003], [0.002], []],
        "latencies": [0.1, 0.2, 0.0],
        "errors": ["", "", "ClientConnectorError: refused"],
    }
    level = level_from_vllm_bench("chat-api", 16, result)
    assert (level.requests, level.errors, level.tokens_per_s, level.wall_s) == (3, 1, 96.0, 2.0)
    # Only the successful requests count in the latencies.
    assert (level.ttft_ms["p50"], level.ttft_ms["p99"]) == (10.0, 30.0)
    assert level.itl_ms["p50"] == 2.0
    assert level.error_examples == ["ClientConnectorError: refused"]


@pytest.mark.unit
def test_the_vllm_bench_command_is_one_greedy_level_without_the_key(tmp_path) -> None:
    out = tmp_path / "r.json"
    command = vllm_bench_command("http://127.0.0.1:9", "tiny-llama", tmp_path, 16, 96, 64, out)
    assert "vllm.benchmarks.serve" in command[2]
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    assert flags["--max-concurrency"] == "16" and flags["--num-prompts"] == "96"
    assert flags["--sharegpt-output-len"] == "64" and flags["--temperature"] == "0"
    assert flags["--dataset-name"] == "sharegpt"  # `random` would add ignore_eos, which chat-api refuses
    assert not any("bearer" in part.lower() for part in command)
    assert parse_args(["--side-by-side", "--driver", "vllm-bench"]).driver == "vllm-bench"


@pytest.mark.unit
def test_every_round_has_at_least_min_requests_so_a_one_stream_p50_is_not_eight_samples(capsys) -> None:
    assert parse_args(["--side-by-side"]).min_requests == 32
    assert requests_for(1, 6, 32) == 32  # one stream: the floor
    assert requests_for(16, 6, 32) == 96  # 16 slots x 6
    assert requests_for(500, 6, 32) == 500  # above 64 streams: one request each
    with pytest.raises(SystemExit):
        parse_args(["--side-by-side", "--min-requests", "0"])
    assert "--min-requests 0: give at least 1" in capsys.readouterr().err


@pytest.mark.integration
def test_a_bench_level_through_chat_api_counts_exact_tokens_and_cancels_nothing(vllm_server, chat_api):
    cancelled_before = chat_api.metric_value("chat_api_cancellations_total")
    result = asyncio.run(run_level("chat-api", chat_api.base_url, vllm_server.served_name, 2, 4, 8, None))
    assert (result.requests, result.errors) == (4, 0), result.error_examples
    # Greedy on a prompt that never meets EOS: every request generates exactly max_tokens.
    assert result.tokens_per_s == pytest.approx(4 * 8 / result.wall_s, rel=0.01)
    assert 0 < result.ttft_ms["p50"] <= result.e2e_ms["p50"]
    assert result.itl_ms["p50"] > 0
    assert chat_api.metric_value("chat_api_cancellations_total") == cancelled_before


def small_run(**levels: object) -> argparse.Namespace:
    """`side_by_side`'s arguments for a short run: 4-token answers, at least 8 requests a round."""
    return argparse.Namespace(min_requests=8, max_tokens=4, api_key=None, driver="builtin", **levels)


@pytest.mark.integration
def test_side_by_side_with_a_control_arm_reports_direct_against_direct(vllm_server, chat_api, capsys) -> None:
    args = small_run(concurrency=[2], repeats=3, per_stream=1, control=True)
    report = asyncio.run(side_by_side(args, vllm_server.base_url, chat_api.base_url, vllm_server.served_name))
    assert report["targets"] == {
        "direct": vllm_server.base_url,
        "chat-api": chat_api.base_url,
        "control": vllm_server.base_url,
    }
    for name in ("direct", "chat-api", "control"):
        [merged] = report["results"][name]
        assert (merged["requests"], merged["errors"]) == (3 * 8, 0)
    assert len(report["control_pairs"]["2"]) == len(report["pairs"]["2"]) == 3
    # The client's CPU per arm is counted (vLLM's only when this tool started it).
    for name in ("direct", "chat-api", "control"):
        assert report["checks"][f"{name}_client_cpu_s_per_1000_requests"] > 0
    report["comparison"] = comparison(report)
    [row] = report["comparison"]
    lo, hi = row["control_throughput_ratio_range"]
    assert 0 < lo <= row["control_throughput_ratio_median"] <= hi
    print_table(report)
    assert "direct (control)" in capsys.readouterr().out


@pytest.mark.integration
def test_the_hop_arm_passes_streams_through_nginx_and_is_paired_against_direct(
    vllm_server, chat_api, tmp_path, capsys
) -> None:
    """`--hop-control`: real nginx between the client and vLLM, its figures paired round by round
    like chat-api's, and gone when the run ends."""
    skip_without_nginx()
    args = small_run(concurrency=[1], repeats=2, per_stream=2, control=False)
    with nginx_hop(vllm_server.base_url, tmp_path) as hop:
        report = asyncio.run(
            side_by_side(args, vllm_server.base_url, chat_api.base_url, vllm_server.served_name, hop)
        )
        # Each stream comes through whole: exactly max_tokens tokens by vLLM's final usage chunk.
        one = asyncio.run(run_level("nginx-hop", hop, vllm_server.served_name, 2, 4, 8, None))
    assert (one.requests, one.errors) == (4, 0), one.error_examples
    assert one.tokens_per_s == pytest.approx(4 * 8 / one.wall_s, rel=0.01)
    assert report["targets"]["nginx-hop"] == hop
    [direct], [through_hop] = report["results"]["direct"], report["results"]["nginx-hop"]
    assert (through_hop["requests"], through_hop["errors"]) == (direct["requests"], 0)
    assert len(report["hop_pairs"]["1"]) == 2
    report["comparison"] = comparison(report)
    [row] = report["comparison"]
    assert row["hop_ttft_p50_delta_ms_median"] is not None
    print_table(report)
    assert "nginx hop" in capsys.readouterr().out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{hop}/health", timeout=2)
