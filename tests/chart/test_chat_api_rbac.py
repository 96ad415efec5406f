"""chat-api's read access to the vLLM pods (issue 19, honest cold start): least privilege as rendered.

A Role in the release namespace with get/list/watch on pods only (no ClusterRole, no secrets, no
subresources such as pods/log or pods/exec, no writes), bound to chat-api's ServiceAccount only; a
token mounted into the chat-api container only (no automount anywhere); chat-api's label selector is
the vLLM Deployment's; the egress rule opens the API server's ports only. The recorded pods the
Kubernetes API double serves (tests/fixtures/kube_pods/) are valid Kubernetes 1.29 Pods shaped like
the chart's vLLM pod, and the double's default Role rules are what the chart renders.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from chat_api.config import Settings

from scripts import chart
from tests.chart import cases, kube_schemas
from tests.fixtures.kube_api_double import (
    CHAT_API_ROLE_RULES,
    VLLM_SELECTOR,
    parse_selector,
    recorded_pod,
    recorded_pod_names,
    selector_matches,
)

pytestmark = pytest.mark.chart

ALL_CASES = cases.all_cases()
T4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
READ_VERBS = {"get", "list", "watch"}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    return spec["template"]["spec"] if "template" in spec else spec


def chat_api_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    pod = pod_spec(cases.find(manifests, "Deployment", "llama-chat-api"))
    return {e["name"]: e.get("value", "") for e in pod["containers"][0]["env"]}


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_chat_api_may_only_read_pods_in_its_own_namespace(case: cases.Case) -> None:
    manifests = cases.rendered(case)
    assert not [m for m in manifests if m["kind"] in ("ClusterRole", "ClusterRoleBinding")], (
        "no cluster-wide access"
    )
    roles = [m for m in manifests if m["kind"] == "Role"]
    assert [r["metadata"]["name"] for r in roles] == ["llama-chat-api-pod-status"]
    role = roles[0]
    assert role["metadata"]["namespace"] == cases.NAMESPACE
    assert role["rules"] == CHAT_API_ROLE_RULES, "the Kubernetes API double enforces these same rules"
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""] and rule["resources"] == ["pods"], rule
        assert set(rule["verbs"]) <= READ_VERBS, rule
        assert "*" not in json.dumps(rule) and "secrets" not in rule["resources"], rule

    binding = cases.find(manifests, "RoleBinding", "llama-chat-api-pod-status")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "llama-chat-api-pod-status",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "llama-chat-api", "namespace": "llama"}]
    for manifest in (role, binding):
        assert kube_schemas.validate_manifest(manifest) == []


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_only_the_chat_api_container_gets_a_token(case: cases.Case) -> None:
    manifests = cases.rendered(case)
    for account in (m for m in manifests if m["kind"] == "ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
    for workload in (m for m in manifests if m["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Pod")):
        name, pod = workload["metadata"]["name"], pod_spec(workload)
        assert pod.get("automountServiceAccountToken") is False, f"{name} automounts a token"
        token_volumes = {
            v["name"]
            for v in pod.get("volumes", [])
            if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))
        }
        if name != "llama-chat-api":
            assert not token_volumes, f"{name} mounts a token"
            continue
        assert token_volumes == {"kube-api-access"}
        [volume] = [v for v in pod["volumes"] if v["name"] == "kube-api-access"]
        token = next(s for s in volume["projected"]["sources"] if "serviceAccountToken" in s)
        assert token["serviceAccountToken"] == {"path": "token", "expirationSeconds": 3600}
        mounts = [
            (c["name"], m)
            for c in pod.get("initContainers", []) + pod["containers"]
            for m in c.get("volumeMounts", [])
            if m["name"] == "kube-api-access"
        ]
        mount = {"name": "kube-api-access", "mountPath": TOKEN_PATH, "readOnly": True}
        assert mounts == [("chat-api", mount)]


def test_chat_api_selects_exactly_the_vllm_pods_of_its_release() -> None:
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", T4))
    selector = chat_api_env(manifests)["CHAT_API_VLLM_POD_SELECTOR"]
    assert Settings(vllm_pod_selector=selector).vllm_pod_selector == selector  # chat-api accepts it
    assert selector == VLLM_SELECTOR, "the chat-api unit tests use the selector the chart renders"
    requirements = parse_selector(selector)
    vllm = cases.find(manifests, "Deployment", "llama-vllm-llama")
    assert selector_matches(requirements, vllm["spec"]["template"]["metadata"]["labels"])
    assert dict(r.split("=") for r in selector.split(",")) == vllm["spec"]["selector"]["matchLabels"]
    others = [
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] != "llama-vllm-llama"
    ]
    assert others and not [
        m["metadata"]["name"]
        for m in others
        if selector_matches(requirements, m["spec"]["template"]["metadata"]["labels"])
    ]


def test_egress_to_the_api_server_opens_its_ports_only_and_takes_its_addresses() -> None:
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", T4))
    policy = cases.find(manifests, "NetworkPolicy", "llama-chat-api")
    api_ports = [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]
    [api_rule] = [rule for rule in policy["spec"]["egress"] if rule.get("ports") == api_ports]
    # `helm template` cannot look the API server up: its ports, to any address.
    assert api_rule == {"ports": api_ports}
    narrowed = cases.render_with(T4, {"chat-api": {"podStatus": {"apiServerCIDRs": ["10.0.1.10/32"]}}})
    policy = cases.find(narrowed, "NetworkPolicy", "llama-chat-api")
    [api_rule] = [rule for rule in policy["spec"]["egress"] if rule.get("ports") == api_ports]
    assert api_rule["to"] == [{"ipBlock": {"cidr": "10.0.1.10/32"}}]
    assert kube_schemas.validate_manifest(policy) == []


def test_pod_status_off_renders_no_role_no_token_and_no_api_egress() -> None:
    manifests = cases.render_with(T4, {"chat-api": {"podStatus": {"enabled": False}}})
    assert not [m for m in manifests if m["kind"] in ("Role", "RoleBinding")]
    pod = pod_spec(cases.find(manifests, "Deployment", "llama-chat-api"))
    assert "kube-api-access" not in {v["name"] for v in pod["volumes"]}
    assert "CHAT_API_VLLM_POD_SELECTOR" not in chat_api_env(manifests)
    egress = cases.find(manifests, "NetworkPolicy", "llama-chat-api")["spec"]["egress"]
    assert not [rule for rule in egress if {"port": 6443, "protocol": "TCP"} in rule.get("ports", [])]


def test_the_default_service_account_is_never_given_the_role() -> None:
    with pytest.raises(chart.ChartError) as caught:
        cases.render_with(T4, {"chat-api": {"serviceAccount": {"create": False}}})
    assert "podStatus.enabled=true with serviceAccount.create=false" in str(caught.value)
    assert "serviceAccount.name" in str(caught.value)
    manifests = cases.render_with(T4, {"chat-api": {"serviceAccount": {"create": False, "name": "chat"}}})
    subjects = cases.find(manifests, "RoleBinding", "llama-chat-api-pod-status")["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": "chat", "namespace": "llama"}]


# ---------------------------------------------------------------- the recorded pods of the double


@pytest.mark.parametrize("name", recorded_pod_names())
def test_each_recorded_pod_is_a_valid_kubernetes_1_29_pod(name: str) -> None:
    pod = recorded_pod(name)
    assert kube_schemas.validate_manifest(pod) == [], name
    broken = recorded_pod(name)
    broken["status"]["phasee"] = "Running"
    assert kube_schemas.validate_manifest(broken), "strict: an unknown field fails"


def test_the_recorded_vllm_pods_have_the_charts_containers_and_labels() -> None:
    """What chat_api.vllm_pods keys on (the init container's and the vLLM container's names, the
    selector labels) is what the chart renders for a model downloaded from the Hub (aws-t4)."""
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", T4))
    vllm = pod_spec(cases.find(manifests, "Deployment", "llama-vllm-llama"))
    requirements = parse_selector(VLLM_SELECTOR)
    for name in recorded_pod_names():
        pod = recorded_pod(name)
        if name == "other-app":
            assert not selector_matches(requirements, pod["metadata"]["labels"])
            continue
        assert selector_matches(requirements, pod["metadata"]["labels"]), name
        for key in ("initContainers", "containers"):
            assert [c["name"] for c in pod["spec"][key]] == [c["name"] for c in vllm[key]], (name, key)
            assert [c["command"] for c in pod["spec"][key]] == [c["command"] for c in vllm[key]], (name, key)
        assert pod["spec"]["automountServiceAccountToken"] is False
