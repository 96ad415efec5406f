"""The chat-ui subchart: what it renders for the environments and the values people change.

The chart tier (tests/chart) already lints, schema-checks and checkov-scans every case; these tests
pin the chat-ui specifics: runtime config, CSP origin, the API proxy, exposure, pod security."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts import chart
from scripts.local_run.process import REPO_ROOT
from tests.chart import cases

pytestmark = pytest.mark.chart

NAME = "llama-chat-ui"


def render(values_file: str | None = None, **extra: Any) -> list[dict[str, Any]]:
    files = [REPO_ROOT / values_file] if values_file else []
    return chart.render(
        files,
        release="llama",
        namespace="llama",
        extra_values=cases.with_image_registry(files, {"chat-ui": extra} if extra else None),
    )


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    hits = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == NAME]
    assert len(hits) == 1, f"expected one {kind} {NAME}, got {len(hits)}"
    return hits[0]


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_aws_values_serve_https_on_the_edge_nodes_ports_80_and_443_because_kubeadm_has_no_load_balancer() -> (
    None
):
    manifests = render("values/aws-t4.yaml")
    assert one(manifests, "Service")["spec"]["type"] == "ClusterIP", "no NodePort is opened"
    edge = cases.find(manifests, "Service", f"{NAME}-edge")["spec"]
    # Terraform's edge.yaml (cases.AWS_EDGE): the worker's private address behind the Elastic IP.
    assert edge["externalIPs"] == ["10.10.1.23"] and edge["externalTrafficPolicy"] == "Local"
    assert [(p["port"], p["targetPort"]) for p in edge["ports"]] == [(80, "http"), (443, "https")]
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "llama-worker-1"}, "Local needs the pods there"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["NGINX_ENVSUBST_TEMPLATE_DIR"] == "/etc/nginx/templates-tls"
    assert env["CHAT_UI_HTTPS_PORT"] == "443" and env["CHAT_UI_HSTS_MAX_AGE"] == "31536000"
    assert "203-0-113-7.sslip.io" in env["CHAT_UI_SERVER_NAMES"].split()
    certificate = cases.find(manifests, "Certificate", NAME)["spec"]
    assert certificate["dnsNames"] == ["203-0-113-7.sslip.io"]
    assert certificate["secretName"] == f"{NAME}-tls"
    issuer = cases.find(manifests, "Issuer", f"{NAME}-acme")["spec"]["acme"]
    assert issuer["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    # The HTTP-01 challenge reaches cert-manager's solver pod through this nginx, not an ingress controller.
    solver_labels = issuer["solvers"][0]["http01"]["ingress"]["podTemplate"]["metadata"]["labels"]
    solver = cases.find(manifests, "Service", f"{NAME}-acme")["spec"]
    assert solver["selector"] == {"acme.cert-manager.io/http01-solver": "true", **solver_labels}
    assert (
        "proxy_pass http://llama-chat-ui-acme:8089;"
        in one(manifests, "ConfigMap")["data"]["acme-challenge.conf"]
    )
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"] == {
        "secretName": f"{NAME}-tls",
        "optional": True,  # nginx must answer the challenge before the certificate exists
        "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
    }


def test_default_is_same_origin_with_nginx_proxying_the_api_to_chat_api() -> None:
    manifests = render()
    data = one(manifests, "ConfigMap")["data"]
    assert json.loads(data["config.json"]) == {"apiBaseUrl": "", "title": "Llama Chat"}
    assert "proxy_pass http://llama-chat-api:8080;" in data["api-proxy.conf"]
    assert "proxy_buffering off;" in data["api-proxy.conf"], "streamed answers must not wait in a buffer"
    env = {e["name"]: e["value"] for e in container(manifests)["env"]}
    assert env["CHAT_UI_CSP_CONNECT_SRC"] == "'self'"
    policy = one(manifests, "NetworkPolicy")["spec"]
    in_namespace = [r for r in policy["egress"] if all("namespaceSelector" not in peer for peer in r["to"])]
    chat_api_peers = [r for r in in_namespace if r["to"][0].get("podSelector")]
    assert chat_api_peers[0]["to"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "chat-api",
        "app.kubernetes.io/instance": "llama",
    }


def test_an_api_on_another_origin_is_added_to_the_csp_connect_src() -> None:
    manifests = render(config={"apiBaseUrl": "https://api.example.com/base/"})
    config = json.loads(one(manifests, "ConfigMap")["data"]["config.json"])
    assert config == {"apiBaseUrl": "https://api.example.com/base", "title": "Llama Chat"}
    env = {e["name"]: e["value"] for e in container(manifests)["env"]}
    assert env["CHAT_UI_CSP_CONNECT_SRC"] == "'self' https://api.example.com"


def test_a_key_for_config_json_is_refused_it_would_be_served_to_every_visitor() -> None:
    with pytest.raises(chart.ChartError, match="serves it to every visitor, so it authenticates nobody"):
        render(config={"apiKey": "client-1"})


def test_pod_is_restricted_with_a_read_only_root_and_emptydirs_for_nginx() -> None:
    manifests = render()
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(manifests)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container(manifests)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/tmp", "/etc/nginx/conf.d"):
        assert "emptyDir" in volumes[mounts[path]], f"nginx writes to {path}"
    assert volumes[mounts["/usr/share/nginx/config"]]["configMap"]["items"] == [
        {"key": "config.json", "path": "config.json"}
    ]


def test_ingress_routes_the_host_to_the_ui_service() -> None:
    # An Ingress exposes the UI beyond the cluster: the chart wants sign-in (cases.SIGN_IN) for it.
    ui = {"chat-ui": {"ingress": {"enabled": True, "host": "chat.example.com", "tlsSecretName": "chat-tls"}}}
    layer = cases.with_image_registry([], chart.deep_merge(cases.SIGN_IN, ui))
    ingress = one(chart.render([], release="llama", namespace="llama", extra_values=layer), "Ingress")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "chat.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": NAME, "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"secretName": "chat-tls", "hosts": ["chat.example.com"]}]


def test_chat_ui_can_be_switched_off() -> None:
    manifests = chart.render(
        [],
        release="llama",
        namespace="llama",
        extra_values=cases.with_image_registry([], {"chat-ui": {"enabled": False}}),
    )
    assert not [m for m in manifests if m["metadata"]["name"] == NAME]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"apiBaseUrl": ""}, "apiProxy": {"enabled": False}}, "enable apiProxy or set apiBaseUrl"),
        ({"service": {"type": "ClusterIP", "nodePort": 30080}}, "set service.type=NodePort"),
        ({"replicaCount": 1}, "raise replicaCount or disable the PDB"),
        ({"config": {"apiBaseUrl": "ftp://files"}}, "apiBaseUrl"),
        ({"image": {"tag": "latest"}}, "tag"),
    ],
)
def test_contradictory_values_fail_with_a_sentence_naming_the_fix(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(chart.ChartError, match=message):
        render(**values)


@pytest.mark.parametrize(
    ("values_file", "how_to_open"),
    [
        ("values/aws-t4.yaml", "Open https://203-0-113-7.sslip.io"),
        ("values/local-cpu.yaml", "port-forward svc/llama-chat-ui 8080:8080"),
    ],
)
def test_install_notes_say_where_to_open_the_chat(values_file: str, how_to_open: str) -> None:
    files = [REPO_ROOT / values_file]
    rendered = chart.render_templates(chart.merged_values(files, cases.with_image_registry(files)))
    assert how_to_open in rendered["platform/templates/NOTES.txt"]


def test_team_defaults_reach_config_json_and_bad_saved_prompts_fail_at_render() -> None:
    prompts = [{"title": "Code reviewer", "text": "Review the code I paste: bugs first."}]
    manifests = render(config={"defaultSystemPrompt": "You help the ACME team.", "savedPrompts": prompts})
    config = json.loads(one(manifests, "ConfigMap")["data"]["config.json"])
    assert config["defaultSystemPrompt"] == "You help the ACME team."
    assert config["savedPrompts"] == prompts
    with pytest.raises(Exception, match="savedPrompts"):
        render(config={"savedPrompts": [{"title": "no text"}]})
