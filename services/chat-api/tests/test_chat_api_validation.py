"""Request validation: the limits chat-api owns, each error naming the field and the limit."""

from __future__ import annotations

import pytest
from chat_api.config import Settings
from chat_api.errors import InvalidRequest, ModelNotAllowed, PayloadTooLarge
from chat_api.validation import normalize_completion_request, parse_json_body

pytestmark = pytest.mark.unit

SETTINGS = Settings(
    max_messages=3,
    max_content_chars=20,
    max_tokens_cap=100,
    default_max_tokens=50,
    max_body_bytes=2048,
    allowed_models=["tiny-llama"],
    default_model="tiny-llama",
)


def ok_body(**extra):
    return {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_a_valid_request_passes_and_gets_the_default_max_tokens():
    body, stream = normalize_completion_request(ok_body(stream=True), SETTINGS)
    assert stream is True and body["max_tokens"] == 50


def test_a_missing_model_gets_the_default_model():
    body, _ = normalize_completion_request({"messages": [{"role": "user", "content": "x"}]}, SETTINGS)
    assert body["model"] == "tiny-llama"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (ok_body(messages=[]), "non-empty list"),
        (ok_body(messages=[{"role": "user", "content": "x"}] * 4), "has 4 entries; the limit is 3"),
        (
            ok_body(messages=[{"role": "user", "content": "x" * 21}]),
            "21 characters of content; the limit is 20",
        ),
        (ok_body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role is 'robot'"),
        (ok_body(messages=[{"role": "user", "content": 5}]), "must be a string or a list of parts"),
        (ok_body(max_tokens=101), "`max_tokens` is 101; the limit is 100"),
        (ok_body(max_tokens=0), "at least 1"),
        (ok_body(max_tokens=True), "must be an integer"),
        (ok_body(max_completion_tokens=500), "`max_completion_tokens` is 500; the limit is 100"),
        (ok_body(stream="yes"), "`stream` must be true or false"),
        (ok_body(n=50), "`n` is 50"),
    ],
)
def test_each_broken_limit_is_named_in_the_message(body, message):
    with pytest.raises(InvalidRequest) as err:
        normalize_completion_request(body, SETTINGS)
    assert message in err.value.message
    assert err.value.status == 400


def test_a_model_outside_the_allowed_list_is_404_listing_the_allowed_ones():
    with pytest.raises(ModelNotAllowed) as err:
        normalize_completion_request(ok_body(model="gpt-4"), SETTINGS)
    assert err.value.status == 404 and "tiny-llama" in err.value.message


def test_content_parts_count_their_text():
    parts = [{"type": "text", "text": "x" * 15}, {"type": "text", "text": "y" * 15}]
    with pytest.raises(InvalidRequest, match="30 characters"):
        normalize_completion_request(ok_body(messages=[{"role": "user", "content": parts}]), SETTINGS)


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"", InvalidRequest, "empty"),
        (b"{nope", InvalidRequest, "not valid JSON"),
        (b"[]", InvalidRequest, "JSON object, not list"),
        (b"x" * 3000, PayloadTooLarge, "3000 bytes; the limit is 2048"),
    ],
)
def test_body_parsing_errors_say_what_is_wrong(raw, error, message):
    with pytest.raises(error, match=message):
        parse_json_body(raw, SETTINGS)


def test_settings_refuse_a_default_above_the_cap_and_name_both_variables():
    with pytest.raises(
        ValueError, match="CHAT_API_DEFAULT_MAX_TOKENS=900 is above CHAT_API_MAX_TOKENS_CAP=100"
    ):
        Settings(default_max_tokens=900, max_tokens_cap=100)


def test_settings_refuse_an_upstream_url_without_scheme():
    with pytest.raises(ValueError, match="must start with http"):
        Settings(upstream_url="vllm:8000")


def test_settings_split_comma_lists_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHAT_API_ALLOWED_MODELS", "a, b,,c")
    monkeypatch.setenv("CHAT_API_CORS_ORIGINS", "https://x.example")
    settings = Settings()
    assert settings.allowed_models == ["a", "b", "c"]
    assert settings.cors_origins == ["https://x.example"]
