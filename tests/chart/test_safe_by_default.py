"""Safe by default (issue 15): a release that exposes the UI or /v1 beyond the cluster must make
people sign in, unless a loudly named acknowledgement says the network is private by other means;
the AWS profiles render with sign-in, HTTPS and the shared store on, and refuse with a sentence
naming what to fill in until the user has."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)
A10G = (cases.ENV_VALUES_DIR / "aws-a10g.yaml",)
REGISTRY = {"global": {"image": {"registry": cases.IMAGE_REGISTRY}}}
ACK = {"global": {"exposure": {"iAcceptAnUnauthenticatedPublicEndpoint": True}}}


def render(files: tuple[Any, ...], *layers: dict[str, Any]) -> list[dict[str, Any]]:
    """Exactly `files` plus `layers` (no sign-in or edge added behind the test's back)."""
    values: dict[str, Any] = REGISTRY
    for layer in layers:
        values = chart.deep_merge(values, layer)
    return chart.render(list(files), release=cases.RELEASE, namespace=cases.NAMESPACE, extra_values=values)


def refusal(files: tuple[Any, ...], *layers: dict[str, Any]) -> str:
    with pytest.raises(chart.ChartError) as caught:
        render(files, *layers)
    return " ".join(str(caught.value).split())


def env_of(manifests: list[dict[str, Any]], name: str) -> dict[str, Any]:
    container = cases.find(manifests, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


EXPOSED_UI = {
    "NodePort": {"chat-ui": {"service": {"type": "NodePort", "nodePort": 30080}}},
    "Ingress": {"chat-ui": {"ingress": {"enabled": True, "host": "chat.example.com"}}},
    "edge": {
        "chat-ui": {"edge": {"externalIPs": ["10.10.1.23"]}, "nodeSelector": {"kubernetes.io/hostname": "w1"}}
    },
}


@pytest.mark.parametrize("how", list(EXPOSED_UI))
def test_an_exposed_ui_without_sign_in_fails_with_a_sentence_naming_the_setting(how: str) -> None:
    said = refusal((), EXPOSED_UI[how])
    assert "The chat UI is reachable from outside the cluster" in said
    assert {"NodePort": "chat-ui.service.type=NodePort", "Ingress": "chat-ui.ingress.enabled=true",
            "edge": "chat-ui.edge.externalIPs=[10.10.1.23]"}[how] in said  # fmt: skip
    assert "nobody has to sign in" in said and "chat-api.auth.oidc.issuerUrl" in said
    assert "global.exposure.iAcceptAnUnauthenticatedPublicEndpoint=true" in said


@pytest.mark.parametrize("how", list(EXPOSED_UI))
def test_the_loud_acknowledgement_or_sign_in_lets_an_exposed_ui_render(how: str) -> None:
    assert cases.find(render((), EXPOSED_UI[how], ACK), "Deployment", "llama-chat-ui")
    manifests = render((), EXPOSED_UI[how], cases.SIGN_IN)
    assert env_of(manifests, "llama-chat-api")["CHAT_API_OIDC_ISSUER_URL"] == "https://accounts.google.com"


def test_the_defaults_and_local_cpu_stay_inside_the_cluster_and_need_no_sign_in() -> None:
    for files in ((), (cases.ENV_VALUES_DIR / "local-cpu.yaml",)):
        manifests = render(files)
        services = [m for m in manifests if m["kind"] == "Service"]
        assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" and not s["spec"].get("externalIPs")
                   for s in services)  # fmt: skip
        assert not [m for m in manifests if m["kind"] == "Ingress"]


def test_chat_api_v1_exposed_on_its_own_needs_keys_or_sign_in() -> None:
    exposed = {"chat-api": {"service": {"type": "NodePort"}}}
    said = refusal((), exposed)
    assert "chat-api's /v1 is reachable from outside the cluster (chat-api.service.type=NodePort)" in said
    assert "chat-api.apiKeys" in said
    assert render((), exposed, {"chat-api": {"apiKeys": {"existingSecret": "api-keys"}}})
    assert render((), exposed, cases.SIGN_IN)


@pytest.mark.parametrize("files", [T4, A10G], ids=["aws-t4", "aws-a10g"])
def test_the_aws_values_refuse_until_the_user_fills_in_the_host_and_sign_in(files: tuple[Any, ...]) -> None:
    # As shipped: the host is the first blank (edge.yaml from Terraform fills it).
    said = refusal(files)
    assert (
        "chat-ui.tls.host is empty" in said and "terraform -chdir=terraform output -raw edge_values" in said
    )
    # With Terraform's edge.yaml but no sign-in: the sentence names the edge and the keys to fill.
    said = refusal(files, cases.AWS_EDGE)
    assert "(chat-ui.edge.externalIPs=[10.10.1.23]) but nobody has to sign in" in said
    assert "chat-api.auth.oidc.issuerUrl" in said and "Google and Cognito" in said


@pytest.mark.parametrize("files", [T4, A10G], ids=["aws-t4", "aws-a10g"])
def test_the_aws_values_render_with_sign_in_https_and_the_shared_store_on(files: tuple[Any, ...]) -> None:
    manifests = render(files, cases.AWS_EDGE, cases.SIGN_IN)
    api_env = env_of(manifests, "llama-chat-api")
    assert api_env["CHAT_API_OIDC_ISSUER_URL"] == "https://accounts.google.com"
    assert api_env["CHAT_API_REDIS_URL_FILE"] == "/etc/chat-api/store/url"
    ui_env = env_of(manifests, "llama-chat-ui")
    assert ui_env["NGINX_ENVSUBST_TEMPLATE_DIR"] == "/etc/nginx/templates-tls"
    assert int(ui_env["CHAT_UI_HSTS_MAX_AGE"]) >= 31536000
    # Nothing listens on a NodePort any more: the security group opens only 80 and 443.
    assert not [m for m in manifests if m["kind"] == "Service" and m["spec"].get("type") == "NodePort"]
    config = cases.find(manifests, "ConfigMap", "llama-chat-ui")["data"]["config.json"]
    assert "apiKey" not in config, "no key is served to every visitor"


# --- the shared store (chat-api.store.redis) ---------------------------------------------------

STORE = {"chat-api": {"store": {"redis": {"enabled": True}}}}


def test_the_store_is_reachable_only_from_chat_api_and_reaches_nothing() -> None:
    manifests = render((), STORE)
    policy = cases.find(manifests, "NetworkPolicy", "llama-chat-api-redis")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    assert policy["ingress"] == [{
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "chat-api",
                                                  "app.kubernetes.io/instance": "llama"}}}],
        "ports": [{"port": "redis", "protocol": "TCP"}],
    }]  # fmt: skip
    api_policy = cases.find(manifests, "NetworkPolicy", "llama-chat-api")["spec"]
    store_rules = [r for r in api_policy["egress"] if r["ports"] == [{"port": 6379, "protocol": "TCP"}]]
    assert store_rules[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "chat-api-redis"


def test_the_store_password_lives_only_in_its_secret_and_the_image_is_pinned() -> None:
    manifests = render((), STORE)
    secret = cases.find(manifests, "Secret", "llama-chat-api-redis")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32 and password.isalnum()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert password not in str([m for m in manifests if m["kind"] != "Secret"])
    url = base64.b64decode(secret["data"]["url"]).decode()
    assert url == f"redis://:{password}@llama-chat-api-redis:6379/0"
    env = env_of(manifests, "llama-chat-api")
    assert env["CHAT_API_REDIS_URL_FILE"] == "/etc/chat-api/store/url"
    assert not [v for v in env.values() if password in str(v)], "the password is in no environment variable"
    api_pod = cases.find(manifests, "Deployment", "llama-chat-api")["spec"]["template"]["spec"]
    store_volume = next(v for v in api_pod["volumes"] if v["name"] == "store")
    assert store_volume["secret"]["secretName"] == "llama-chat-api-redis"
    assert store_volume["secret"]["items"] == [{"key": "url", "path": "url"}]
    pod = cases.find(manifests, "StatefulSet", "llama-chat-api-redis")["spec"]["template"]["spec"]
    redis = pod["containers"][0]
    assert redis["image"] == "docker.io/library/redis:8.2.2-alpine"
    assert redis["command"] == ["redis-server", "/etc/redis/redis.conf"], "no password in argv"
    assert redis["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
    claim = cases.find(manifests, "StatefulSet", "llama-chat-api-redis")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    conf = cases.find(manifests, "ConfigMap", "llama-chat-api-redis")["data"]["redis.conf"]
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf


def test_a_brought_store_secret_is_used_and_none_is_generated() -> None:
    manifests = render(
        (), chart.deep_merge(STORE, {"chat-api": {"store": {"redis": {"existingSecret": "my-redis"}}}})
    )
    assert not [
        m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == "llama-chat-api-redis"
    ]
    api_pod = cases.find(manifests, "Deployment", "llama-chat-api")["spec"]["template"]["spec"]
    assert next(v for v in api_pod["volumes"] if v["name"] == "store")["secret"]["secretName"] == "my-redis"


def test_a_store_on_a_host_path_must_name_its_node() -> None:
    on_disk = chart.deep_merge(
        STORE, {"chat-api": {"store": {"redis": {"persistence": {"hostPath": "/var/lib/x"}}}}}
    )
    said = refusal((), on_disk)
    assert "chat-api.store.redis.nodeSelector is empty" in said
