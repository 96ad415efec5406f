"""The request contract: one set of models, built from the settings, validates, fills the OpenAPI
schema and decides what reaches vLLM. Every refusal names the field and the limit."""

from __future__ import annotations

import json

import pytest
from chat_api.app import create_app
from chat_api.config import Settings
from chat_api.contract import build_contract, upstream_body
from chat_api.errors import InvalidRequest, ModelNotAllowed
from chat_api.routes.common import RequestRoute
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

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
CONTRACT = build_contract(SETTINGS)


def parse(**body):
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return CONTRACT.parse(CONTRACT.completion, json.dumps(body).encode())


def test_a_valid_request_gets_the_default_max_tokens_and_asks_vllm_for_usage():
    req = parse(model="tiny-llama", stream=True)
    body = upstream_body(CONTRACT, req, CONTRACT.check_model_name(req.model), req.stream)
    assert body["max_tokens"] == 50 and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": [{"role": "user", "content": "x"}] * 4}, "messages: List should have at most 3 items"),
        ({"messages": [{"role": "user", "content": "x" * 21}]}, "at most 20 characters"),
        (
            {"messages": [{"role": "user", "content": "x" * 15}] * 2},
            "30 characters of content; the limit is 20",
        ),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"max_tokens": 101}, "max_tokens: Input should be less than or equal to 100"),
        ({"max_completion_tokens": 500}, "max_completion_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"n": 50}, "n: Input should be less than or equal to 8"),
        ({"n": 3, "max_tokens": 40}, "n x max_tokens is 3 x 40 = 120; the limit is 100"),
        ({"logprobs": True, "top_logprobs": 20}, "top_logprobs: Input should be less than or equal to 5"),
        ({"ignore_eos": True}, "ignore_eos: is not accepted here"),
        ({"request_id": "mine"}, "request_id: is not accepted here"),
        ({"prompt_logprobs": 5}, "prompt_logprobs: is not accepted here"),
        ({"structured_outputs": {"regex": "(a+)+$"}}, "structured_outputs: is not accepted here"),
        ({"chat_template": "{{ 7*7 }}"}, "chat_template: is not accepted here"),
        ({"min_tokens": 100}, "min_tokens: is not accepted here"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.0.content",
        ),
    ],
)
def test_each_refusal_names_the_field_and_the_limit(body, message):
    with pytest.raises(InvalidRequest) as err:
        parse(**body)
    assert message in err.value.message
    assert err.value.status == 400


def test_json_nested_too_deeply_is_a_400_not_a_recursion_error():
    deep = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        CONTRACT.parse(CONTRACT.completion, deep)


def test_a_model_outside_the_allowed_list_is_404_listing_the_allowed_ones():
    with pytest.raises(ModelNotAllowed) as err:
        CONTRACT.check_model_name("gpt-4")
    assert err.value.status == 404 and "tiny-llama" in err.value.message


def test_the_user_field_is_accepted_but_never_forwarded():
    req = parse(user="someone@example.com")
    assert "user" not in upstream_body(CONTRACT, req, "tiny-llama", False)


def test_the_openapi_schema_is_the_contract_with_the_settings_limits():
    schema = create_app(SETTINGS).openapi()
    parts = schema["components"]["schemas"]
    for route, name in (("/v1/chat/completions", "ChatCompletionRequest"), ("/api/chat", "UiChatRequest")):
        body = schema["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{name}"}
        model = parts[name]
        assert model["additionalProperties"] is False
        assert model["properties"]["messages"]["maxItems"] == 3
        assert model["properties"]["max_tokens"]["anyOf"][0]["maximum"] == 100
    ui_message = parts["UiMessage"]
    assert ui_message["properties"]["role"]["enum"] == ["system", "user", "assistant"]
    assert ui_message["properties"]["content"]["maxLength"] == 20


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


def test_the_readme_lists_every_setting():
    from pathlib import Path

    readme = (Path(__file__).parents[3] / "docs" / "chat-api.md").read_text()
    missing = [name for name in Settings.model_fields if f"`CHAT_API_{name.upper()}`" not in readme]
    assert not missing, f"docs/chat-api.md does not list {missing}"


def test_a_request_route_refuses_an_endpoint_whose_parameters_nothing_would_resolve():
    """The chat routes skip FastAPI's per-request handler (routes.common.RequestRoute): an endpoint
    that needs it (a parameter, a dependency) is refused when the route is built, not ignored."""

    async def takes_a_query(request: Request, limit: int = 3) -> JSONResponse:
        return JSONResponse({})

    async def takes_the_request(request: Request) -> JSONResponse:
        return JSONResponse({})

    router = APIRouter(route_class=RequestRoute)
    with pytest.raises(TypeError, match="takes the Request and nothing else"):
        router.post("/query")(takes_a_query)
    with pytest.raises(TypeError, match="no dependencies"):
        router.post("/depends", dependencies=[Depends(lambda: None)])(takes_the_request)
    router.post("/plain")(takes_the_request)  # the shape the chat routes have
