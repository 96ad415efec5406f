"""Every values case renders, and every manifest it renders is valid: Kubernetes 1.29 schemas in
strict mode, prometheus-operator and KEDA CRD models for their custom resources."""

from __future__ import annotations

import pytest

from scripts import chart
from tests.chart import cases, kube_schemas

pytestmark = pytest.mark.chart

ALL_CASES = cases.all_cases()
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "Namespace",
}


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_every_values_case_renders_manifests_valid_for_kubernetes_1_29(case: cases.Case) -> None:
    manifests = cases.rendered(case)
    assert manifests, f"{case.name} rendered nothing"
    problems = {
        f"{m['kind']}/{m['metadata']['name']}": errors
        for m in manifests
        if (errors := kube_schemas.validate_manifest(m))
    }
    assert not problems, f"{case.name}: {problems}"


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_every_object_carries_the_platform_labels_and_release_namespace(case: cases.Case) -> None:
    for m in cases.rendered(case):
        meta = m["metadata"]
        labels = meta.get("labels", {})
        where = f"{case.name} {m['kind']}/{meta['name']}"
        assert labels.get("app.kubernetes.io/instance") == cases.RELEASE, (
            f"{where}: app.kubernetes.io/instance"
        )
        assert labels.get("app.kubernetes.io/part-of") == "llama-platform", (
            f"{where}: app.kubernetes.io/part-of"
        )
        if m["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == cases.NAMESPACE, (
                f"{where}: set metadata.namespace: {{{{ .Release.Namespace }}}}"
            )


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.name)
def test_no_container_image_floats_on_latest_or_an_empty_tag(case: cases.Case) -> None:
    for m in cases.rendered(case):
        spec = m.get("spec", {})
        pod = spec.get("template", {}).get("spec", spec) if m["kind"] != "Pod" else spec
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            image = container["image"]
            name_part = image.rsplit("/", 1)[-1]
            assert "@sha256:" in image or ":" in name_part, f"{case.name}: {image} has no tag"
            assert not image.endswith(":latest"), f"{case.name}: {image} floats on latest"


def test_monitoring_objects_are_checked_against_the_prometheus_operator_model() -> None:
    monitor = cases.find(
        cases.rendered(cases.Case("values/aws-t4.yaml", (cases.ENV_VALUES_DIR / "aws-t4.yaml",))),
        "ServiceMonitor",
        "llama-vllm-llama",
    )
    assert kube_schemas.validate_manifest(monitor) == []
    broken = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "http", "intervall": "15s"}]}}
    assert kube_schemas.validate_manifest(broken) == [
        "ServiceMonitor.spec.endpoints[0].intervall: unknown field"
    ]


def test_an_unknown_field_in_a_deployment_fails_the_strict_kubernetes_schema() -> None:
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", (cases.ENV_VALUES_DIR / "aws-t4.yaml",)))
    deployment = cases.find(manifests, "Deployment", "llama-vllm-llama")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    assert kube_schemas.validate_manifest(broken)


def test_the_render_announces_kubernetes_1_29_and_the_crd_api_versions() -> None:
    assert chart.KUBE_VERSION == "v1.29.15"
    assert "monitoring.coreos.com/v1/ServiceMonitor" in chart.API_VERSIONS


def test_values_files_merge_like_helm_f_a_f_b() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "gone": {"x": 1}}
    override = {"a": {"c": [3], "e": 2}, "gone": None}
    assert chart.deep_merge(base, override) == {"a": {"b": 1, "c": [3], "e": 2}, "d": 1, "gone": None}
    assert base["a"]["c"] == [1, 2], "the inputs stay untouched"


def test_a_null_in_a_later_values_file_removes_the_charts_default() -> None:
    t4 = cases.ENV_VALUES_DIR / "aws-t4.yaml"
    manifests = cases.render_with((t4,), {"vllm-llama": {"podLabels": {"team": "ml"}}})
    labels = cases.find(manifests, "Deployment", "llama-vllm-llama")["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "ml"
    manifests = cases.render_with((t4,), {"vllm-llama": {"resources": {"limits": None}}})
    pod = cases.find(manifests, "Deployment", "llama-vllm-llama")["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}, "the 13Gi default is gone"
