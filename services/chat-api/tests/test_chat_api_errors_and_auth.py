"""Error mapping (OpenAI shape, statuses) and API keys from mounted files."""

from __future__ import annotations

import json

import pytest
from chat_api.auth import ApiKeys, KeyStoreError, presented_key
from chat_api.errors import Unauthorized, UpstreamHTTPError, upstream_http_error

pytestmark = pytest.mark.unit


def test_a_vllm_400_keeps_its_status_and_message():
    body = json.dumps(
        {"error": {"message": "temperature must be >= 0", "type": "BadRequestError", "param": "t"}}
    )
    err = upstream_http_error(400, body.encode())
    assert isinstance(err, UpstreamHTTPError)
    assert (err.status, err.kind, err.message, err.param) == (
        400,
        "http_4xx",
        "temperature must be >= 0",
        "t",
    )
    assert err.body()["error"]["code"] == "bad_request_error"


@pytest.mark.parametrize(("upstream", "status"), [(500, 502), (503, 503), (504, 504)])
def test_vllm_5xx_become_gateway_errors_without_vllms_body(upstream, status):
    err = upstream_http_error(upstream, b"Traceback: /opt/vllm/secret_path.py [Errno 111]")
    assert err.status == status and err.kind == "http_5xx"
    assert err.message == f"the model server failed (HTTP {upstream}); retry later"


def test_the_error_body_has_the_openai_shape():
    body = Unauthorized().body()
    assert set(body["error"]) == {"message", "type", "code", "param"}


def test_keys_are_read_one_per_file_and_matched_by_name(tmp_path):
    (tmp_path / "team-a").write_text("key-a\n")
    (tmp_path / "team-b").write_text("key-b")
    (tmp_path / "..data").mkdir()  # what a Secret volume also holds
    keys = ApiKeys(tmp_path)
    assert keys.identify("key-b") == "team-b"
    with pytest.raises(Unauthorized):
        keys.identify("key-c")
    with pytest.raises(Unauthorized):
        keys.identify(None)


def test_auth_is_off_without_a_directory():
    assert ApiKeys(None).identify(None) == ""


def test_an_empty_or_missing_key_directory_fails_at_start_with_the_fix(tmp_path):
    with pytest.raises(KeyStoreError, match="no API keys"):
        ApiKeys(tmp_path)
    with pytest.raises(KeyStoreError, match="not a directory"):
        ApiKeys(tmp_path / "absent")


def test_the_key_comes_from_bearer_or_x_api_key_header():
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key({}) is None
    assert presented_key({"authorization": "Basic abc"}) is None


def test_an_emptied_key_directory_refuses_every_key(tmp_path, monkeypatch):
    (tmp_path / "team-a").write_text("key-a")
    keys = ApiKeys(tmp_path)
    assert keys.identify("key-a") == "team-a"
    (tmp_path / "team-a").unlink()  # the operator empties the Secret to revoke every key
    monkeypatch.setattr("chat_api.auth.RELOAD_INTERVAL_S", 0.0)
    with pytest.raises(Unauthorized):
        keys.identify("key-a")
