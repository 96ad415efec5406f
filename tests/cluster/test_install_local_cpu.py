"""The `cluster` tier: `helm install` of charts/platform with values/local-cpu.yaml into the cluster
that KUBECONFIG names (kind, k3d, minikube, or the AWS cluster), then readiness and `helm test`.

It needs a cluster that answers and a real `helm` binary (pyhelm3 drives it). No kubeconfig, or a
connection refused or timed out after a quick probe, skips the tier with the reason; anything else
(an error answer, an unreadable kubeconfig; a missing helm under CI=true) fails it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import chart

pytestmark = pytest.mark.cluster

RELEASE = "llama"
VALUES = chart.REPO / "values" / "local-cpu.yaml"
# Image pull (the vLLM CPU image is about 2 GB), weights download and load on a laptop.
READY_TIMEOUT_S = 20 * 60
PROBE_TIMEOUT_S = 5


def _kubeconfig() -> Path | None:
    default = str(Path.home() / ".kube" / "config")
    for candidate in [*os.environ.get("KUBECONFIG", "").split(os.pathsep), default]:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def reachable_kubeconfig() -> Iterator[Path]:
    """The kubeconfig of a cluster that answers /version within a few seconds, else a skip."""
    path = _kubeconfig()
    if path is None:
        pytest.skip("no cluster: KUBECONFIG is unset and ~/.kube/config does not exist")
    import requests
    from pykube import HTTPClient, KubeConfig

    # Only "nobody there" skips (refused, unreachable, timed out). A cluster that answers with an
    # error, or a kubeconfig that cannot be read, is a failure to look at, not a missing tier.
    client = HTTPClient(KubeConfig.from_file(str(path)), timeout=PROBE_TIMEOUT_S)
    try:
        response = client.get(version="", base="/version")
    except (requests.ConnectionError, requests.Timeout) as exc:
        pytest.skip(
            f"the cluster in {path} does not answer within {PROBE_TIMEOUT_S}s: {type(exc).__name__}: {exc}"
        )
    response.raise_for_status()
    if shutil.which("helm") is None:
        missing = "no `helm` binary on PATH: the cluster tier installs with the real helm CLI (pyhelm3)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, a cluster answers and this tier cannot run: {missing}")
        pytest.skip(missing)
    # pytest-helm-charts' kube_cluster fixture reads KUBECONFIG.
    os.environ.setdefault("KUBECONFIG", str(path))
    yield path


def may(client, namespace: str, verb: str, resource: str, in_namespace: str) -> bool:
    """Whether chat-api's ServiceAccount may `verb` `resource` there: the API server's own RBAC answer
    (a SubjectAccessReview, what `kubectl auth can-i --as` asks)."""
    account = f"system:serviceaccount:{namespace}:{RELEASE}-chat-api"
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": account,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
            "resourceAttributes": {
                "namespace": in_namespace,
                "verb": verb,
                "resource": resource.partition("/")[0],
                "subresource": resource.partition("/")[2],
            },
        },
    }
    response = client.post(
        url="subjectaccessreviews", version="authorization.k8s.io/v1", data=json.dumps(review)
    )
    response.raise_for_status()
    return bool(response.json()["status"].get("allowed"))


@pytest.fixture(scope="module")
def namespace(reachable_kubeconfig: Path, namespace_factory) -> str:
    name = "llama-test-" + "".join(random.choices(string.ascii_lowercase, k=5))
    namespace_factory(name)
    return name


async def test_local_cpu_release_installs_becomes_ready_and_passes_helm_test(
    reachable_kubeconfig: Path, kube_cluster, namespace: str
) -> None:
    from pyhelm3 import Client
    from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run

    helm = Client(kubeconfig=reachable_kubeconfig, default_timeout=f"{READY_TIMEOUT_S}s")
    platform = await helm.get_chart(chart.UMBRELLA)
    registry = os.environ.get("LLAMA_IMAGE_REGISTRY", "")
    if not registry:
        pytest.skip(
            "LLAMA_IMAGE_REGISTRY is unset: chat-api and chat-ui exist only where `make images "
            "REGISTRY=...` pushed them; set LLAMA_IMAGE_REGISTRY to that registry"
        )
    values = chart.merged_values([VALUES], {"global": {"image": {"registry": registry}}})
    try:
        revision = await helm.install_or_upgrade_release(
            RELEASE, platform, values, namespace=namespace, wait=True, timeout=f"{READY_TIMEOUT_S}s"
        )
        assert revision.status.value == "deployed"
        await asyncio.to_thread(
            wait_for_deployments_to_run,
            kube_cluster.kube_client,
            [f"{RELEASE}-vllm-llama"],
            namespace,
            timeout_sec=READY_TIMEOUT_S,
        )
        test = await asyncio.to_thread(
            subprocess.run,
            [
                "helm",
                "test",
                RELEASE,
                "--namespace",
                namespace,
                "--logs",
                "--timeout",
                "5m",
                "--kubeconfig",
                str(reachable_kubeconfig),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert test.returncode == 0, test.stdout + test.stderr
        assert "one-token completion: ok" in test.stdout
        # chat-api reads the vLLM pods' status (issue 19) and nothing else.
        client = kube_cluster.kube_client
        assert may(client, namespace, "list", "pods", namespace)
        assert may(client, namespace, "watch", "pods", namespace)
        assert not may(client, namespace, "list", "pods", "kube-system"), "only its own namespace"
        assert not may(client, namespace, "get", "secrets", namespace), "no secrets"
        assert not may(client, namespace, "delete", "pods", namespace), "read only"
        assert not may(client, namespace, "get", "pods/log", namespace), "no logs"
    finally:
        await helm.uninstall_release(RELEASE, namespace=namespace, wait=True)
