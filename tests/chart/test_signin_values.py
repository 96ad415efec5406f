"""Sign-in's chart wiring: chat-api.auth.oidc -> CHAT_API_OIDC_* env, the Secret mounted as files,
egress to the provider on 443, and chat-ui's config.json flag and /auth/ proxy; contradictions fail
with a sentence that names the value."""

from __future__ import annotations

from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

# The chart's defaults: the AWS profile turns sign-in and its own store on (test_safe_by_default).
T4: tuple = ()
OIDC = {
    "issuerUrl": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
    "clientId": "4h7example",
    "clientSecretSecret": "chat-signin",
    "redirectUrl": "https://chat.example.com/auth/callback",
    "allowedGroups": ["ml-team"],
    "groupsClaim": "cognito:groups",
}


def signin_values(oidc: dict[str, Any] | None = None, sign_in: bool = True) -> dict[str, Any]:
    return {
        "chat-api": {"auth": {"oidc": oidc if oidc is not None else OIDC}},
        "chat-ui": {"config": {"signIn": sign_in}},
    }


def _fails(values: dict[str, Any]) -> str:
    with pytest.raises(chart.ChartError) as caught:
        cases.render_with(T4, values)
    return str(caught.value)


def test_sign_in_renders_env_secret_files_egress_and_the_ui_flag() -> None:
    manifests = cases.render_with(T4, signin_values())
    deployment = cases.find(manifests, "Deployment", "llama-chat-api")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CHAT_API_OIDC_ISSUER_URL"] == OIDC["issuerUrl"]
    assert env["CHAT_API_OIDC_CLIENT_ID"] == "4h7example"
    assert env["CHAT_API_OIDC_ALLOWED_GROUPS"] == "ml-team"
    assert env["CHAT_API_OIDC_GROUPS_CLAIM"] == "cognito:groups"
    assert env["CHAT_API_OIDC_CLIENT_SECRET_FILE"] == "/etc/chat-api/signin/client-secret"
    assert env["CHAT_API_SESSION_SECRET_FILE"] == "/etc/chat-api/signin/session-key"
    assert env["CHAT_API_SESSION_MAX_AGE_S"] == "28800"
    # The secrets themselves are never in the environment.
    assert not any("valueFrom" in e for e in container["env"] if e["name"].startswith("CHAT_API_OIDC"))
    volume = next(v for v in pod["volumes"] if v["name"] == "signin")
    assert volume["secret"]["secretName"] == "chat-signin"
    assert {i["key"] for i in volume["secret"]["items"]} == {"client-secret", "session-key"}
    assert any(m["mountPath"] == "/etc/chat-api/signin" and m["readOnly"] for m in container["volumeMounts"])
    policy = cases.find(manifests, "NetworkPolicy", "llama-chat-api")
    assert {"ports": [{"port": 443, "protocol": "TCP"}]} in policy["spec"]["egress"]
    ui = cases.find(manifests, "ConfigMap", "llama-chat-ui")["data"]
    assert '"signIn": true' in ui["config.json"] and "apiKey" not in ui["config.json"]
    assert "auth/" in ui["api-proxy.conf"]


def test_without_sign_in_nothing_of_it_renders() -> None:
    manifests = cases.render_with(T4, {})
    container = cases.find(manifests, "Deployment", "llama-chat-api")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert not [e for e in container["env"] if e["name"].startswith(("CHAT_API_OIDC", "CHAT_API_SESSION"))]
    assert '"signIn"' not in cases.find(manifests, "ConfigMap", "llama-chat-ui")["data"]["config.json"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            signin_values({**OIDC, "clientSecretSecret": ""}),
            "chat-api.auth.oidc.clientSecretSecret is needed too",
        ),
        (signin_values({**OIDC, "redirectUrl": ""}), "chat-api.auth.oidc.redirectUrl is needed too"),
        (signin_values({**OIDC, "allowedGroups": []}), "admits nobody"),
        (signin_values(sign_in=False), "set chat-ui.config.signIn=true"),
        (signin_values({}, sign_in=True), "chat-api.auth.oidc.issuerUrl is empty"),
        (
            signin_values({"clientId": "x"}, sign_in=False),
            "settings are set but chat-api.auth.oidc.issuerUrl is empty",
        ),
        (signin_values({**OIDC, "issuerUrl": "http://idp.example.com"}), "issuerUrl"),
        (signin_values({**OIDC, "redirectUrl": "https://chat.example.com/callback"}), "redirectUrl"),
    ],
)
def test_an_incomplete_or_contradictory_sign_in_fails_with_its_setting(
    values: dict[str, Any], message: str
) -> None:
    assert message in _fails(values)
