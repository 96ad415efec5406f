"""What values/aws-t4.yaml (the default environment) renders for the vLLM model server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = cases.Case("values/aws-t4.yaml", (cases.ENV_VALUES_DIR / "aws-t4.yaml",))


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return cases.rendered(T4)


@pytest.fixture(scope="module")
def pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return cases.find(manifests, "Deployment", "llama-vllm-llama")["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def vllm(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == "vllm")


def _arg(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def test_t4_deployment_requests_exactly_one_gpu(vllm: dict[str, Any]) -> None:
    assert vllm["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_t4_runs_vllm_serve_in_half_precision_with_the_triton_backend(vllm: dict[str, Any]) -> None:
    assert vllm["command"] == ["vllm", "serve"]
    assert _arg(vllm, "--dtype") == "half"
    assert _arg(vllm, "--attention-backend") == "TRITON_ATTN"
    assert _arg(vllm, "--max-model-len") == "8192"
    assert _arg(vllm, "--gpu-memory-utilization") == "0.9"
    assert _arg(vllm, "--served-model-name") == "llama-3.2-3b-instruct"
    assert "--kv-cache-dtype" not in vllm["args"], "T4 keeps the fp16 KV cache"


def test_t4_rolls_out_with_recreate(manifests: list[dict[str, Any]]) -> None:
    assert cases.find(manifests, "Deployment", "llama-vllm-llama")["spec"]["strategy"] == {"type": "Recreate"}


def test_t4_probes_give_a_cold_start_twenty_minutes_then_watch_health(vllm: dict[str, Any]) -> None:
    startup = vllm["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"
    assert vllm["livenessProbe"]["httpGet"]["path"] == "/health"
    assert vllm["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


def test_t4_cache_survives_pod_restarts_on_the_node_nvme(pod: dict[str, Any], vllm: dict[str, Any]) -> None:
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["hostPath"] == {"path": "/mnt/model-cache/vllm", "type": "Directory"}
    assert {"name": "models", "mountPath": "/models"} in vllm["volumeMounts"]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    assert env["VLLM_CACHE_ROOT"].startswith("/models/"), "vLLM's compile cache lives on the same volume"


def test_t4_downloads_weights_in_an_init_container_with_the_token_from_a_secret(
    pod: dict[str, Any], vllm: dict[str, Any]
) -> None:
    (init,) = pod["initContainers"]
    token = next(e for e in init["env"] if e["name"] == "HF_TOKEN")
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}
    assert "already in" in init["args"][0], "a finished download is not repeated"
    assert all("hf_" not in arg for arg in init["args"] + init["command"]), "no token in argv"
    assert "HF_TOKEN" not in {e["name"] for e in vllm["env"]}
    assert (
        _arg(vllm, "--served-model-name")
        and vllm["args"][0] == "/models/weights/meta-llama/Llama-3.2-3B-Instruct"
    )


def test_t4_pins_the_cuda_13_image_of_the_release_ci_tests_and_never_latest(pod: dict[str, Any]) -> None:
    for container in pod["initContainers"] + pod["containers"]:
        assert container["image"] == "docker.io/vllm/vllm-openai:v0.32.0"


def test_t4_pod_lands_only_on_tainted_gpu_nodes(pod: dict[str, Any]) -> None:
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_t4_pod_runs_non_root_with_a_read_only_root_and_shm_in_memory(
    pod: dict[str, Any], vllm: dict[str, Any]
) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert vllm["securityContext"]["readOnlyRootFilesystem"] is True
    assert vllm["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in vllm["volumeMounts"]


def test_t4_service_and_monitoring_follow_the_interfaces(manifests: list[dict[str, Any]]) -> None:
    service = cases.find(manifests, "Service", "llama-vllm-llama")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    monitor = cases.find(manifests, "ServiceMonitor", "llama-vllm-llama")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    optional = {"PodDisruptionBudget", "ScaledObject", "Secret", "PersistentVolumeClaim"}
    assert not [
        m for m in manifests if m["kind"] in optional and m["metadata"]["name"].startswith("llama-vllm-llama")
    ]


def test_t4_network_policy_admits_only_chat_api_monitoring_and_the_test_pod(
    manifests: list[dict[str, Any]],
) -> None:
    policy = cases.find(manifests, "NetworkPolicy", "llama-vllm-llama")["spec"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    peers = [p.get("podSelector", p.get("namespaceSelector"))["matchLabels"] for p in rule["from"]]
    assert peers == [
        {"app.kubernetes.io/name": "chat-api", "app.kubernetes.io/instance": "llama"},
        {"app.kubernetes.io/component": "helm-test", "app.kubernetes.io/instance": "llama"},
        {"kubernetes.io/metadata.name": "monitoring"},
    ]
    egress_ports = sorted(p["port"] for rule in policy["egress"] for p in rule["ports"])
    assert egress_ports == [53, 53, 443]


def test_helm_test_pod_asks_the_served_model_for_one_token(manifests: list[dict[str, Any]]) -> None:
    test_pod = cases.find(manifests, "Pod", "llama-test-completion")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = test_pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["VLLM_URL"] == "http://llama-vllm-llama:8000" and env["MODEL"] == "llama-3.2-3b-instruct"
    script = container["args"][0]
    assert '"$VLLM_URL/v1/completions"' in script and '"max_tokens": 1' in script
