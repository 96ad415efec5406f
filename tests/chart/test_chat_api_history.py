"""chat-api's conversation store in the chart (issue 19): SQLite on a volume for one pod, PostgreSQL
from a Secret for more, and a render-time refusal of SQLite with more than one pod."""

from __future__ import annotations

from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)  # two chat-api pods
CPU = (cases.ENV_VALUES_DIR / "local-cpu.yaml",)  # one chat-api pod
DEPLOYMENT = f"{cases.RELEASE}-chat-api"


def chat_api(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = cases.find(manifests, "Deployment", DEPLOYMENT)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return deployment, {e["name"]: e for e in container["env"]}


def test_one_pod_keeps_the_conversations_in_sqlite_on_a_claim_and_is_recreated_not_rolled() -> None:
    manifests = cases.render_with(CPU, {})
    deployment, env = chat_api(manifests)
    assert env["CHAT_API_DATABASE_URL"]["value"] == "sqlite+aiosqlite:////var/lib/chat-api/history.db"
    claim = cases.find(manifests, "PersistentVolumeClaim", f"{DEPLOYMENT}-history")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "history", "persistentVolumeClaim": {"claimName": f"{DEPLOYMENT}-history"}} in pod[
        "volumes"
    ]
    assert {"name": "history", "mountPath": "/var/lib/chat-api"} in pod["containers"][0]["volumeMounts"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_more_pods_by_default_store_nothing_on_the_server_rather_than_one_history_per_pod() -> None:
    manifests = cases.render_with(T4, {})
    deployment, env = chat_api(manifests)
    assert env["CHAT_API_DATABASE_URL"]["value"] == ""
    assert not [
        m for m in manifests if m["kind"] == "PersistentVolumeClaim" and "chat-api" in m["metadata"]["name"]
    ]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_sqlite_with_more_than_one_pod_is_refused_with_the_fix() -> None:
    with pytest.raises(chart.ChartError) as refused:
        cases.render_with(T4, {"chat-api": {"history": {"database": "sqlite"}}})
    message = str(refused.value)
    assert "chat-api.history.database=sqlite" in message and "may run 2 pods" in message
    assert "history.database=postgresql" in message and "replicaCount: 1" in message
    # An HPA's ceiling counts, not its floor.
    one_then_six = {"replicaCount": 1, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 6}}
    with pytest.raises(chart.ChartError, match="may run 6 pods"):
        cases.render_with(CPU, {"chat-api": {"history": {"database": "sqlite"}, **one_then_six}})


def test_postgresql_takes_its_url_from_a_secret_and_opens_egress_to_it() -> None:
    with pytest.raises(chart.ChartError, match=r"needs history\.postgresql\.existingSecret"):
        cases.render_with(T4, {"chat-api": {"history": {"database": "postgresql"}}})
    peer = {"ipBlock": {"cidr": "10.0.5.0/24"}}
    history = {"database": "postgresql", "postgresql": {"existingSecret": "chat-db", "egressTo": [peer]}}
    manifests = cases.render_with(T4, {"chat-api": {"history": history}})
    _, env = chat_api(manifests)
    assert env["CHAT_API_DATABASE_URL"] == {
        "name": "CHAT_API_DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "chat-db", "key": "url"}},
    }
    policy = cases.find(manifests, "NetworkPolicy", DEPLOYMENT)
    assert {"ports": [{"port": 5432, "protocol": "TCP"}], "to": [peer]} in policy["spec"]["egress"]
