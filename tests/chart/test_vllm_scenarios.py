"""What the other environments and the ci/ scenarios change in the vLLM release."""

from __future__ import annotations

from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart


def _env(name: str) -> list[dict[str, Any]]:
    return cases.rendered(cases.Case(f"values/{name}", (cases.ENV_VALUES_DIR / name,)))


def _scenario(name: str) -> list[dict[str, Any]]:
    return cases.rendered(cases.Case(f"ci/{name}", (cases.SCENARIO_DIR / name,)))


def _vllm(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = cases.find(manifests, "Deployment", "llama-vllm-llama")["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "vllm")


def test_a10g_serves_bf16_with_a_longer_context_and_lets_vllm_pick_flash_attention() -> None:
    _, vllm = _vllm(_env("aws-a10g.yaml"))
    args = vllm["args"]
    assert args[args.index("--dtype") + 1] == "bfloat16"
    assert int(args[args.index("--max-model-len") + 1]) > 8192
    assert "--attention-backend" not in args


def test_local_cpu_runs_the_cpu_image_without_any_gpu_request_or_gpu_placement() -> None:
    pod, vllm = _vllm(_env("local-cpu.yaml"))
    assert vllm["image"].startswith("docker.io/vllm/vllm-openai-cpu:v")
    assert "nvidia.com/gpu" not in vllm["resources"].get("requests", {})
    assert "nvidia.com/gpu" not in vllm["resources"].get("limits", {})
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "--gpu-memory-utilization" not in vllm["args"] and "--enforce-eager" in vllm["args"]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    init = pod["initContainers"][0]
    assert "HF_TOKEN" not in {e["name"] for e in init["env"]}, "an ungated model needs no token"


def test_monitoring_auto_renders_no_servicemonitor_where_the_crd_is_absent() -> None:
    t4 = [cases.ENV_VALUES_DIR / "aws-t4.yaml"]
    values = chart.merged_values(t4, cases.with_image_registry(t4))
    # cert-manager only (values/aws-t4.yaml's certificate; README "On AWS" installs it first).
    templates = chart.render_templates(values, api_versions=("cert-manager.io/v1",))
    assert not any("kind: ServiceMonitor" in text for text in templates.values())


def test_monitoring_forced_off_renders_no_servicemonitor() -> None:
    assert not [m for m in _scenario("monitoring-off.yaml") if m["kind"] == "ServiceMonitor"]


def test_emptydir_cache_keeps_the_seed_sizes() -> None:
    pod, _ = _vllm(_scenario("cache-emptydir.yaml"))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["emptyDir"] == {"sizeLimit": "20Gi"}
    assert volumes["hf-cache"]["emptyDir"] == {"sizeLimit": "10Gi"}


def test_created_pvc_uses_the_storage_class_value_and_survives_uninstall() -> None:
    manifests = _scenario("cache-pvc-storageclass.yaml")
    claim = cases.find(manifests, "PersistentVolumeClaim", "llama-vllm-llama-cache")
    assert claim["spec"]["storageClassName"] == "gp3"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod, _ = _vllm(manifests)
    claim_volume = {"name": "models", "persistentVolumeClaim": {"claimName": "llama-vllm-llama-cache"}}
    assert claim_volume in pod["volumes"]


def test_existing_claim_is_mounted_and_none_is_created() -> None:
    manifests = _scenario("cache-pvc-existing.yaml")
    assert not [m for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    pod, _ = _vllm(manifests)
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "llama-models"}} in pod["volumes"]


def test_token_given_as_a_value_becomes_a_secret_and_appears_nowhere_else() -> None:
    manifests = _scenario("hf-token-from-value.yaml")
    secret = cases.find(manifests, "Secret", "llama-vllm-llama-hf-token")
    assert set(secret["data"]) == {"token"}
    others = [m for m in manifests if m["kind"] != "Secret"]
    assert "hf_not_a_real_token" not in repr(others)
    files = [cases.SCENARIO_DIR / "hf-token-from-value.yaml"]
    notes = chart.render_templates(chart.merged_values(files, cases.with_image_registry(files)))
    assert "hf_not_a_real_token" not in notes["platform/templates/NOTES.txt"]


def test_baked_weights_image_skips_the_download_and_the_https_egress() -> None:
    manifests = _scenario("baked-weights-image.yaml")
    pod, vllm = _vllm(manifests)
    assert "initContainers" not in pod
    assert vllm["args"][0] == "/opt/models/Llama-3.2-3B-Instruct"
    policy = cases.find(manifests, "NetworkPolicy", "llama-vllm-llama")
    assert [p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]] == [53, 53]


def test_registry_mirror_rewrites_every_third_party_image_and_adds_pull_secrets() -> None:
    manifests = _scenario("registry-mirror.yaml")
    pod, vllm = _vllm(manifests)
    assert vllm["image"].startswith("mirror.internal.example:5000/vllm/vllm-openai@sha256:")
    api = cases.find(manifests, "Deployment", "llama-chat-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == "registry.internal.example:5000/team/llama-platform/chat-api:0.1.0"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["runtimeClassName"] == "nvidia"
    test_pod = cases.find(manifests, "Pod", "llama-test-completion")
    assert test_pod["spec"]["containers"][0]["image"].startswith("mirror.internal.example:5000/curlimages/")


def test_keda_scales_on_waiting_requests_and_never_to_zero() -> None:
    manifests = _scenario("autoscaling-keda.yaml")
    scaled = cases.find(manifests, "ScaledObject", "llama-vllm-llama")["spec"]
    assert scaled["minReplicaCount"] == 1
    assert "vllm:num_requests_waiting" in scaled["triggers"][0]["metadata"]["query"]
    deployment = cases.find(manifests, "Deployment", "llama-vllm-llama")
    assert "replicas" not in deployment["spec"], "KEDA owns replicas"
    assert cases.find(manifests, "PodDisruptionBudget", "llama-vllm-llama")["spec"]["minAvailable"] == 1


def test_rolling_update_is_allowed_when_a_spare_gpu_exists() -> None:
    deployment = cases.find(_scenario("rolling-update-with-spare-gpu.yaml"), "Deployment", "llama-vllm-llama")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_tests_and_network_policy_can_be_switched_off() -> None:
    kinds = {(m["kind"], m["metadata"]["name"]) for m in _scenario("tests-and-networkpolicy-off.yaml")}
    assert ("NetworkPolicy", "llama-vllm-llama") not in kinds
    assert ("Pod", "llama-test-completion") not in kinds
