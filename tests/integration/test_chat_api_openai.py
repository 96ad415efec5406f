"""chat-api is OpenAI-compatible: the official client works against it unchanged (real vLLM)."""

from __future__ import annotations

import subprocess
import time

import httpx
import openai
import pytest

from scripts.local_run.process import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def client(chat_api) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{chat_api.base_url}/v1", api_key="unused-in-local-mode", max_retries=0)


def test_openai_client_streams_a_chat_completion_through_chat_api(client, vllm_server, chat_api):
    before = chat_api.metric_value("chat_api_completion_tokens_total")
    stream = client.chat.completions.create(
        model=vllm_server.served_name,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=12,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    # chat-api asks vLLM for usage itself; a client that did not ask must not get the extra chunk
    # (its `choices` is empty and breaks `chunk.choices[0]` code).
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert text
    assert chat_api.metric_value("chat_api_completion_tokens_total") > before


def test_openai_client_gets_usage_chunk_when_it_asks_for_it(client, vllm_server):
    stream = client.chat.completions.create(
        model=vllm_server.served_name,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_openai_client_non_streaming_completion_returns_message_and_usage(client, vllm_server):
    completion = client.chat.completions.create(
        model=vllm_server.served_name, messages=[{"role": "user", "content": "hello"}], max_tokens=6
    )
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage.completion_tokens == 6


def test_openai_client_lists_the_served_model(client, vllm_server):
    assert [m.id for m in client.models.list()] == [vllm_server.served_name]


def test_vllm_gets_chat_apis_request_id_never_the_clients(chat_api, vllm_server):
    # vLLM keys requests by id: a client choosing one could collide with (and abort) another's.
    response = httpx.post(
        f"{chat_api.base_url}/v1/chat/completions",
        headers={"x-request-id": "req-pinned-42"},
        json={
            "model": vllm_server.served_name,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2,
        },
        timeout=30,
    )
    assert response.status_code == 200
    ours = response.headers["x-request-id"]
    assert ours != "req-pinned-42"
    # vLLM names the completion after the request id it received.
    assert ours in response.json()["id"] and "req-pinned-42" not in response.json()["id"]


def test_vllm_extensions_that_change_the_cost_are_refused_by_name(chat_api, vllm_server):
    """vLLM accepts these (a real vLLM would run 4096 tokens past EOS, or log 20 prompt logprobs
    per token); chat-api forwards only the fields of its contract."""
    for extra in ({"ignore_eos": True}, {"min_tokens": 4000}, {"prompt_logprobs": 20}, {"request_id": "x"}):
        response = httpx.post(
            f"{chat_api.base_url}/v1/chat/completions",
            json={"model": vllm_server.served_name, "messages": [{"role": "user", "content": "hi"}], **extra},
            timeout=30,
        )
        assert response.status_code == 400, (extra, response.text)
        assert next(iter(extra)) in response.json()["error"]["message"]


def test_ui_sse_stream_sends_deltas_then_done_with_usage_and_timings(chat_api):
    from tests.integration.chat_helpers import sse_events

    with httpx.stream(
        "POST",
        f"{chat_api.base_url}/api/chat",
        json={"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response))
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"}
    done = events[-1][1]
    assert done["finish_reason"] == "length"
    assert done["usage"]["completion_tokens"] == 8 and done["usage"]["prompt_tokens"] > 0
    assert done["timings"]["ttft_ms"] > 0 and done["timings"]["total_ms"] >= done["timings"]["ttft_ms"]
    assert done["timings"]["tokens_per_s"] > 0


def test_readyz_reports_ready_with_the_model(chat_api, vllm_server):
    response = httpx.get(f"{chat_api.base_url}/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "models": [vllm_server.served_name]}


BAD_INPUTS = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "body: Input should be an object"),
    (b'{"messages": []}', 400, "messages: List should have at least 1 item"),
    (b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, "messages.0.role"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 999999}', 400, "equal to 4096"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}', 400, "valid integer"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream: Input should be"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": -5}', 400, "temperature"),
    # vLLM's own 4xx passes through with its message.
    (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}', 404, "no-such-model"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_INPUTS, ids=[b[2] for b in BAD_INPUTS])
def test_bad_input_gets_4xx_in_openai_shape_naming_the_problem(chat_api, body, status, needle):
    response = httpx.post(
        f"{chat_api.base_url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["type"] and "code" in error


def test_ui_request_with_too_many_messages_names_the_limit(chat_api_factory):
    server = chat_api_factory(env={"CHAT_API_MAX_MESSAGES": "2"})
    response = httpx.post(
        f"{server.base_url}/api/chat",
        json={"messages": [{"role": "user", "content": "x"}] * 3},
        timeout=30,
    )
    assert response.status_code == 400
    assert "messages: List should have at most 2 items" in response.json()["error"]["message"]
    assert server.metric_value("chat_api_rejections_total", reason="validation") == 1


def test_openapi_fuzzing_with_auth_on_finds_no_server_error_and_no_undocumented_status(
    chat_api_factory, tmp_path
):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "fuzzer").write_text("fuzz-key")
    # A low max_tokens cap keeps every generated request short on a CPU-only vLLM.
    server = chat_api_factory(
        env={
            "CHAT_API_MAX_TOKENS_CAP": "8",
            "CHAT_API_DEFAULT_MAX_TOKENS": "8",
            "CHAT_API_RATE_LIMIT_PER_MINUTE": "0",
            "CHAT_API_API_KEYS_DIR": str(keys),
        },
        wait_ready=True,
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "schemathesis"),
            "run",
            f"{server.base_url}/openapi.json",
            "--header",
            "Authorization: Bearer fuzz-key",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--max-examples",
            "10",
            "--workers",
            "1",
            "--generation-deterministic",
            "--request-timeout",
            "30",
            "--max-time",
            "75",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO_ROOT / "test-artifacts",
    )
    assert result.returncode == 0, (
        f"schemathesis found problems:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )
    assert "passed" in result.stdout
    assert time.monotonic() - started < 150
