"""The Kubernetes API double (tests/fixtures/kube_api_double.py) answers `make platform`'s calls as
kube-apiserver 1.29 does, and the wait step turns an API it cannot read into its cause and fix."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube_api_double import ADMIN_GROUP, ADMIN_USER, KubeApiDouble

pytestmark = pytest.mark.unit

# What the TLS layer hands the double for kubeadm's admin client certificate (ssl.getpeercert()).
ADMIN_CERT = {"subject": ((("organizationName", ADMIN_GROUP),), (("commonName", ADMIN_USER),))}
SECRETS = "/api/v1/namespaces/llama/secrets"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApiDouble]:
    with KubeApiDouble(tmp_path / "api") as double:
        yield double


def admin(api: KubeApiDouble, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return api.handle(method, path, None, ADMIN_CERT, body)


def secret(name: str, data: dict[str, str], **meta: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, **meta}, "data": encoded}


def test_secrets_are_created_replaced_and_refused_as_the_api_server_does(api: KubeApiDouble) -> None:
    code, body = admin(api, "POST", SECRETS, secret("hf-token", {"token": "x"}))
    assert (code, body["reason"]) == (404, "NotFound") and body["message"] == 'namespaces "llama" not found'
    assert (
        admin(api, "POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "llama"}})[0]
        == 201
    )
    code, body = admin(
        api, "POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "llama"}}
    )
    assert (code, body["reason"]) == (409, "AlreadyExists")

    code, created = admin(api, "POST", SECRETS, secret("hf-token", {"token": "x"}))
    assert code == 201 and created["type"] == "Opaque"
    assert admin(api, "POST", SECRETS, secret("hf-token", {"token": "x"}))[1]["reason"] == "AlreadyExists"
    # update.go: no resourceVersion is 422, a stale one 409 Conflict, the current one replaces it
    code, body = admin(api, "PUT", f"{SECRETS}/hf-token", secret("hf-token", {"token": "y"}))
    assert (code, body["reason"]) == (422, "Invalid") and "must be specified for an update" in body["message"]
    stale = secret("hf-token", {"token": "y"}, resourceVersion="1")
    assert admin(api, "PUT", f"{SECRETS}/hf-token", stale)[1]["reason"] == "Conflict"
    current = secret("hf-token", {"token": "y"}, resourceVersion=created["metadata"]["resourceVersion"])
    code, replaced = admin(api, "PUT", f"{SECRETS}/hf-token", current)
    assert code == 200 and int(replaced["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    assert api.secret_data("llama", "hf-token") == {"token": b"y"}
    # ValidateSecret: a key outside [-._a-zA-Z0-9] and a name that is no DNS-1123 subdomain
    code, body = admin(api, "POST", SECRETS, secret("Bad_Name", {"a key": "x"}))
    assert (
        code == 422 and "metadata.name: Invalid value" in body["message"] and "data[a key]" in body["message"]
    )
    code, listed = admin(api, "GET", f"{SECRETS}?labelSelector=owner%3Dhelm")
    assert code == 200 and listed["kind"] == "SecretList" and listed["items"] == []
    assert admin(api, "DELETE", f"{SECRETS}/hf-token")[0] == 200
    assert admin(api, "DELETE", f"{SECRETS}/hf-token")[1]["message"] == 'secrets "hf-token" not found'


def test_rbac_keeps_chat_apis_service_account_to_reading_pods(api: KubeApiDouble) -> None:
    token = f"Bearer {api.token}"
    assert api.handle("GET", "/api/v1/namespaces/llama/pods", token)[0] == 200
    code, body = api.handle("GET", SECRETS, token)
    assert code == 403 and body["message"] == (
        'secrets is forbidden: User "system:serviceaccount:llama:llama-chat-api" cannot list resource '
        '"secrets" in API group "" in the namespace "llama"'
    )
    code, body = api.handle("GET", "/api/v1/nodes", token)
    assert code == 403 and "at the cluster scope" in body["message"]
    assert api.handle("GET", "/api/v1/nodes", None)[0] == 401
    assert api.handle("GET", "/version", token)[0] == 200, "discovery is open to every authenticated user"
    code, body = admin(api, "PATCH", "/api/v1/namespaces/llama/pods/llama-vllm-0", {})
    assert code == 405, "kubelet and the scheduler are the replay's: pods are read-only here"


def test_a_refused_or_unreadable_api_is_the_wait_steps_cause_and_fix(
    api: KubeApiDouble, tmp_path: Path
) -> None:
    from node_bootstrap.platform import StepFailed, wait_for_vllm

    with pytest.raises(StepFailed, match=r"cannot read the kubeconfig .*missing.*make kubeconfig"):
        wait_for_vllm(tmp_path / "missing", "llama", "llama", 60, print)
    api.refuse_next[("GET", "/api/v1/namespaces/llama/pods")] = (403, "Forbidden", "pods is forbidden")
    said: list[str] = []
    with pytest.raises(StepFailed) as failed:
        wait_for_vllm(api.kubeconfig, "llama", "llama", 60, said.append)
    assert "the Kubernetes API could not be read while waiting for vLLM" in str(failed.value)
    assert "403: pods is forbidden" in str(failed.value) and "Fix: make doctor" in str(failed.value)
