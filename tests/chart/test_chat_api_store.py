"""chat-api's shared store in the chart: the Redis URL only from a Secret, limits and budgets as
settings, and the NetworkPolicy letting chat-api (and only it) reach the store's port."""

from __future__ import annotations

from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

# The chart's defaults: the AWS profile turns sign-in and its own store on (test_safe_by_default).
T4: tuple = ()
STORE = {"existingSecret": "llama-redis-url"}


def chat_api_env(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    deployment = cases.find(manifests, "Deployment", f"{cases.RELEASE}-chat-api")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_store_url_comes_from_a_secret_and_the_budgets_from_values() -> None:
    manifests = cases.render_with(
        T4, {"chat-api": {"store": STORE, "limits": {"tokenBudgetPerDay": 200000, "rateLimitPerDay": 2000}}}
    )
    env = chat_api_env(manifests)
    # A file from the Secret: neither the URL nor the password is in the manifest or the environment.
    assert "CHAT_API_REDIS_URL" not in env
    assert env["CHAT_API_REDIS_URL_FILE"]["value"] == "/etc/chat-api/store/url"
    pod = cases.find(manifests, "Deployment", f"{cases.RELEASE}-chat-api")["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "store"]
    assert volume["secret"]["secretName"] == "llama-redis-url"
    assert volume["secret"]["items"] == [{"key": "url", "path": "url"}]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "store"]
    assert mount == {"name": "store", "mountPath": "/etc/chat-api/store", "readOnly": True}
    assert env["CHAT_API_TOKEN_BUDGET_PER_DAY"]["value"] == "200000"
    assert env["CHAT_API_RATE_LIMIT_PER_DAY"]["value"] == "2000"
    assert env["CHAT_API_TOKEN_BUDGET_PER_MINUTE"]["value"] == "0"
    policy = cases.find(manifests, "NetworkPolicy", f"{cases.RELEASE}-chat-api")
    to_store = [
        rule for rule in policy["spec"]["egress"] if {"port": 6379, "protocol": "TCP"} in rule["ports"]
    ]
    assert to_store and to_store[0]["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}
    ]


def test_without_a_store_there_is_no_url_and_no_egress_to_it() -> None:
    manifests = cases.render_with(T4, {})
    assert "CHAT_API_REDIS_URL_FILE" not in chat_api_env(manifests)
    policy = cases.find(manifests, "NetworkPolicy", f"{cases.RELEASE}-chat-api")
    assert all(p["port"] != 6379 for rule in policy["spec"]["egress"] for p in rule["ports"])


def test_a_store_url_written_into_values_is_refused() -> None:
    with pytest.raises(chart.ChartError) as caught:
        cases.render_with(T4, {"chat-api": {"store": {"url": "redis://:secret@redis:6379"}}})
    assert "url" in str(caught.value)
