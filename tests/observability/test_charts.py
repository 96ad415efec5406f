"""gpu-operator-lite and kube-prometheus-dashboards as Helm renders them inside the umbrella."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import chart
from tests.chart import cases
from tests.observability import support

pytestmark = pytest.mark.chart

T4 = chart.REPO / "values" / "aws-t4.yaml"
LOCAL = chart.REPO / "values" / "local-cpu.yaml"
RELEASE = "llama"


def render(files: tuple[Path, ...] = (T4,), extra: dict[str, Any] | None = None, **kwargs: Any) -> list[dict]:
    extra_values = cases.with_image_registry(files, extra)
    return chart.render(list(files), release=RELEASE, namespace="llama", extra_values=extra_values, **kwargs)


def of(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict], kind: str, name: str) -> dict:
    hits = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(hits) == 1, [(m["kind"], m["metadata"]["name"]) for m in manifests]
    return hits[0]


def daemonsets(manifests: list[dict]) -> dict[str, dict]:
    return {m["metadata"]["labels"]["app.kubernetes.io/name"]: m for m in of(manifests, "DaemonSet")}


# ------------------------------------------------------------------- gpu-operator-lite


def test_both_daemonsets_run_only_on_gpu_nodes_as_node_critical_with_the_nvidia_runtime() -> None:
    sets = daemonsets(render())
    assert set(sets) == {"nvidia-device-plugin", "dcgm-exporter"}
    for name, ds in sets.items():
        pod = ds["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ], name
        assert pod["priorityClassName"] == "system-node-critical", name
        assert pod["runtimeClassName"] == "nvidia", name
        assert pod["automountServiceAccountToken"] is False, name


def test_gpu_node_selector_and_tolerations_come_from_global_gpu() -> None:
    extra = {
        "global": {
            "gpu": {
                "nodeSelector": {"nvidia.com/gpu.present": "a10g"},
                "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoExecute"}],
            }
        }
    }
    for ds in daemonsets(render(extra=extra)).values():
        pod = ds["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "a10g"}
        assert pod["tolerations"] == [
            {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoExecute"}
        ]


def test_containers_keep_least_privilege_and_say_why_they_run_as_root() -> None:
    for name, ds in daemonsets(render()).items():
        (container,) = ds["spec"]["template"]["spec"]["containers"]
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True, name
        assert ctx["capabilities"] == {"drop": ["ALL"]}, name
        assert not ctx.get("privileged"), name
        assert not ds["spec"]["template"]["spec"].get("hostNetwork"), name
        assert not ds["spec"]["template"]["spec"].get("hostPID"), name
    sources = (support.GPU_CHART / "templates" / "device-plugin.yaml").read_text()
    sources += (support.GPU_CHART / "templates" / "dcgm-exporter.yaml").read_text()
    assert sources.count("runAsUser: 0") == 2 and sources.count("# Root") == 2, "each root container says why"


def test_dcgm_profiling_adds_only_sys_admin() -> None:
    ds = daemonsets(render(extra={"gpu-operator-lite": {"dcgmExporter": {"profiling": {"enabled": True}}}}))
    ctx = ds["dcgm-exporter"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    counters = one(
        render(extra={"gpu-operator-lite": {"dcgmExporter": {"profiling": {"enabled": True}}}}),
        "ConfigMap",
        f"{RELEASE}-dcgm-exporter-counters",
    )
    assert "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE" in counters["data"]["counters.csv"]


def test_dcgm_exporter_reads_pod_resources_and_publishes_the_charts_counters_on_9400() -> None:
    manifests = render()
    ds = daemonsets(manifests)["dcgm-exporter"]
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/lib/kubelet/pod-resources"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[mounts["/var/lib/kubelet/pod-resources"]["name"]]["hostPath"]["path"]
        == "/var/lib/kubelet/pod-resources"
    )
    assert container["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert container["image"] == "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
    assert container["args"] == ["-f", "/etc/dcgm-exporter/counters.csv"]
    counters = one(manifests, "ConfigMap", f"{RELEASE}-dcgm-exporter-counters")["data"]["counters.csv"]
    assert counters.strip() == (support.GPU_CHART / "files" / "counters.csv").read_text().strip()
    service = one(manifests, "Service", f"{RELEASE}-dcgm-exporter")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9400, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_device_plugin_is_pinned_and_registers_through_the_kubelet_socket_dir() -> None:
    ds = daemonsets(render())["nvidia-device-plugin"]
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.4"
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/var/lib/kubelet/device-plugins"]
    assert "CONFIG_FILE" not in {e["name"] for e in container["env"]}


def test_runtime_class_nvidia_uses_handler_nvidia() -> None:
    (runtime_class,) = of(render(), "RuntimeClass")
    assert runtime_class["metadata"]["name"] == "nvidia" and runtime_class["handler"] == "nvidia"


def test_time_slicing_is_off_by_default_and_configures_replicas_when_on() -> None:
    assert not [
        m for m in of(render(), "ConfigMap") if m["metadata"]["name"].endswith("device-plugin-config")
    ]
    manifests = render(
        extra={"gpu-operator-lite": {"devicePlugin": {"timeSlicing": {"enabled": True, "replicas": 4}}}}
    )
    config = yaml.safe_load(
        one(manifests, "ConfigMap", f"{RELEASE}-nvidia-device-plugin-config")["data"]["config.yaml"]
    )
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    container = daemonsets(manifests)["nvidia-device-plugin"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "CONFIG_FILE", "value": "/config/config.yaml"} in container["env"]
    values = (support.GPU_CHART / "values.yaml").read_text()
    assert "UNSAFE under vLLM" in values


def test_service_monitor_carries_the_kube_prometheus_stack_release_label_from_values() -> None:
    manifests = render(extra={"global": {"monitoring": {"release": "kps"}}})
    monitor = one(manifests, "ServiceMonitor", f"{RELEASE}-dcgm-exporter")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "dcgm-exporter"


def test_without_the_prometheus_operator_api_auto_renders_no_monitoring_objects() -> None:
    # cert-manager only: values/aws-t4.yaml's certificate needs it (README "On AWS" installs it first).
    manifests = render(api_versions=["cert-manager.io/v1"])
    assert not of(manifests, "ServiceMonitor") and not of(manifests, "PrometheusRule")
    assert of(manifests, "ConfigMap"), "dashboards do not need the API"


def test_local_cpu_has_no_gpu_software_and_no_gpu_dashboard_or_alerts() -> None:
    manifests = render((LOCAL,))
    assert not of(manifests, "DaemonSet") and not of(manifests, "RuntimeClass")
    dashboards = [
        m["metadata"]["name"] for m in of(manifests, "ConfigMap") if "dashboard" in m["metadata"]["name"]
    ]
    assert sorted(dashboards) == [f"{RELEASE}-dashboard-chat-api", f"{RELEASE}-dashboard-model-inference"]
    assert f"{RELEASE}-gpu" not in {m["metadata"]["name"] for m in of(manifests, "PrometheusRule")}


def test_an_empty_gpu_node_selector_fails_with_a_sentence() -> None:
    # The umbrella always carries a default selector; the subchart on its own can be given none.
    from helm_python import Chart
    from helm_python.errors import HelmError

    with pytest.raises(
        HelmError, match=r"global.gpu.nodeSelector is empty: .* set it to the GPU nodes' label"
    ):
        Chart.load(support.GPU_CHART).render(
            {"global": {"gpu": {"nodeSelector": {}}}}, name=RELEASE, namespace="llama"
        )


# ------------------------------------------------------------------- kube-prometheus-dashboards


def test_one_configmap_per_dashboard_with_the_sidecar_label_and_the_source_json() -> None:
    manifests = render()
    maps = {
        m["metadata"]["name"]: m for m in of(manifests, "ConfigMap") if "-dashboard-" in m["metadata"]["name"]
    }
    assert set(maps) == {f"{RELEASE}-dashboard-{p.stem}" for p in support.dashboard_files()}
    for path in support.dashboard_files():
        cm = maps[f"{RELEASE}-dashboard-{path.stem}"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "LLM platform"
        (content,) = cm["data"].values()
        assert json.loads(content) == support.load_dashboard(path)


def test_the_sidecar_label_is_a_value() -> None:
    # Helm merges maps: the default label goes away only when set to null.
    extra = {
        "kube-prometheus-dashboards": {
            "dashboards": {"labels": {"grafana_dashboard": None, "team/dashboard": "llm"}}
        }
    }
    for cm in of(render(extra=extra), "ConfigMap"):
        if "-dashboard-" in cm["metadata"]["name"]:
            assert cm["metadata"]["labels"]["team/dashboard"] == "llm"
            assert "grafana_dashboard" not in cm["metadata"]["labels"]


def test_prometheus_rules_equal_the_source_files_with_values_filled_and_carry_the_release_label(
    tmp_path: Path,
) -> None:
    manifests = render(extra={"global": {"monitoring": {"release": "kps"}}})
    rules = {m["metadata"]["name"]: m for m in of(manifests, "PrometheusRule")}
    assert set(rules) == {f"{RELEASE}-{p.stem}" for p in support.source_rule_files()}
    _, paths_groups = support.rendered_rules(tmp_path)
    from_chart = [g for name in sorted(rules) for g in rules[name]["spec"]["groups"]]
    assert from_chart == paths_groups, "the chart's rules differ from what promtool and the live test check"
    assert all(r["metadata"]["labels"]["release"] == "kps" for r in rules.values())


def test_runbook_url_and_vllm_job_are_values_and_alerts_can_be_disabled() -> None:
    extra = {
        "kube-prometheus-dashboards": {
            "rules": {
                "runbookBaseUrl": "https://git.example.com/ops/runbooks.md",
                "vllmJob": "vllm-llama",
                "disabledAlerts": ["VLLMPreemptions"],
            }
        }
    }
    rules = of(render(extra=extra), "PrometheusRule")
    alerts = {r["alert"]: r for m in rules for g in m["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "VLLMPreemptions" not in alerts
    assert (
        alerts["VLLMDown"]["annotations"]["runbook_url"] == "https://git.example.com/ops/runbooks.md#vllmdown"
    )
    assert 'up{job=~"vllm-llama"}' in alerts["VLLMDown"]["expr"]


def test_excluding_an_unknown_dashboard_is_refused() -> None:
    with pytest.raises(chart.ChartError, match=r"/dashboards/exclude/0': value must be one of 'gpu'"):
        render(extra={"kube-prometheus-dashboards": {"dashboards": {"exclude": ["gpus"]}}})


def test_a_kube_prometheus_stack_values_file_matches_the_platform_defaults() -> None:
    kps = yaml.safe_load((support.DASHBOARDS_CHART / "examples" / "kube-prometheus-stack.yaml").read_text())
    sidecar = kps["grafana"]["sidecar"]["dashboards"]
    assert (
        sidecar["enabled"] is True
        and sidecar["label"] == "grafana_dashboard"
        and sidecar["labelValue"] == "1"
    )
    assert sidecar["searchNamespace"] == "ALL" and sidecar["folderAnnotation"] == "grafana_folder"
    prom = kps["prometheus"]["prometheusSpec"]
    assert prom["ruleSelector"]["matchLabels"]["release"] == "kube-prometheus-stack"
    assert prom["serviceMonitorSelector"]["matchLabels"]["release"] == "kube-prometheus-stack"


def test_every_optional_gpu_and_dashboard_variant_renders_objects_valid_for_kubernetes_1_29() -> None:
    from tests.chart import kube_schemas

    extra = {
        "gpu-operator-lite": {
            "devicePlugin": {"timeSlicing": {"enabled": True, "replicas": 3}},
            "dcgmExporter": {"profiling": {"enabled": True}},
        },
        "kube-prometheus-dashboards": {
            "dashboards": {"namespace": "monitoring", "folder": ""},
            "rules": {"additionalLabels": {"team": "llm"}, "disabledAlerts": ["GPUXidError"]},
        },
    }
    manifests = render(extra=extra)
    mine = [
        m
        for m in manifests
        if m["metadata"]
        .get("labels", {})
        .get("helm.sh/chart", "")
        .startswith(("gpu-operator-lite-", "kube-prometheus-dashboards-"))
    ]
    assert {m["kind"] for m in mine} >= {
        "DaemonSet",
        "ConfigMap",
        "PrometheusRule",
        "ServiceMonitor",
        "RuntimeClass",
    }
    problems = {f"{m['kind']}/{m['metadata']['name']}": kube_schemas.validate_manifest(m) for m in mine}
    assert not {k: v for k, v in problems.items() if v}
