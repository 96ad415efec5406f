"""One contract per fact in the charts: each fact several charts rely on (a Service's port, the model's
name and shape, the monitoring switch) is defined in one place, and changing it there changes every
rendered use. Names, labels, images and the monitoring switch come from one library chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = (chart.REPO / "values" / "aws-t4.yaml",)
SUBCHARTS = ("vllm-llama", "chat-api", "chat-ui", "gpu-operator-lite", "kube-prometheus-dashboards")
LIBRARY = chart.UMBRELLA / "charts" / "platform-lib"
# A subchart's own definition of what platform-lib provides.
OWN_HELPER = re.compile(
    r'define "([^"]+\.(?:fullname|labels|selectorLabels|image|redisImage|serviceAccountName|monitoring\w*))"'
)


def _render_text(
    extra: dict[str, Any], files: tuple[Path, ...] = T4
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    values = chart.merged_values(files, cases.with_image_registry(files, extra))
    templates = chart.render_templates(values, cases.RELEASE, cases.NAMESPACE)
    docs = [
        d
        for source, text in sorted(templates.items())
        if source.endswith(".yaml")
        for d in yaml.safe_load_all(text)
        if d
    ]
    return docs, templates


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _container(manifests: list[dict[str, Any]], kind: str, name: str, container: str) -> dict[str, Any]:
    spec = cases.find(manifests, kind, name)["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return next(c for c in pod["containers"] if c["name"] == container)


def _egress_ports_to(policy: dict[str, Any], app: str) -> list[int]:
    return [
        p["port"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == app
        for p in rule["ports"]
    ]


def test_changing_the_vllm_port_changes_every_rendered_use() -> None:
    manifests, templates = _render_text({"global": {"ports": {"vllm-llama": 8123}}})
    service = cases.find(manifests, "Service", "llama-vllm-llama")
    assert [p["port"] for p in service["spec"]["ports"]] == [8123]
    vllm = _container(manifests, "Deployment", "llama-vllm-llama", "vllm")
    assert vllm["ports"][0]["containerPort"] == 8123
    assert vllm["args"][vllm["args"].index("--port") + 1] == "8123"
    policy = cases.find(manifests, "NetworkPolicy", "llama-vllm-llama")
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [8123]
    api = _container(manifests, "Deployment", "llama-chat-api", "chat-api")
    assert _env(api)["CHAT_API_UPSTREAM_URL"] == "http://llama-vllm-llama:8123"
    assert _egress_ports_to(cases.find(manifests, "NetworkPolicy", "llama-chat-api"), "vllm-llama") == [8123]
    test_pod = _container(manifests, "Pod", "llama-test-completion", "completion")
    assert _env(test_pod)["VLLM_URL"] == "http://llama-vllm-llama:8123"
    test_policy = cases.find(manifests, "NetworkPolicy", "llama-test-completion")
    assert _egress_ports_to(test_policy, "vllm-llama") == [8123]
    notes = templates["platform/templates/NOTES.txt"]
    assert "llama-vllm-llama.llama.svc:8123" in notes and "8123:8123" in notes
    # Nothing anywhere still says the old port.
    assert not [source for source, text in templates.items() if re.search(r"\b8000\b", text)]


def test_changing_the_chat_api_port_changes_every_rendered_use() -> None:
    manifests, _ = _render_text({"global": {"ports": {"chat-api": 8181}}})
    service = cases.find(manifests, "Service", "llama-chat-api")
    assert [p["port"] for p in service["spec"]["ports"]] == [8181]
    api = _container(manifests, "Deployment", "llama-chat-api", "chat-api")
    assert api["ports"][0]["containerPort"] == 8181 and _env(api)["CHAT_API_PORT"] == "8181"
    proxy = cases.find(manifests, "ConfigMap", "llama-chat-ui")["data"]["api-proxy.conf"]
    upstreams = set(re.findall(r"proxy_pass (\S+);", proxy))
    assert upstreams == {"http://llama-chat-api:8181"}
    assert _egress_ports_to(cases.find(manifests, "NetworkPolicy", "llama-chat-ui"), "chat-api") == [8181]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"vllm-llama": {"service": {"port": 9000}}}, "global.ports.vllm-llama"),
        ({"chat-api": {"service": {"port": 9000}}}, "global.ports.chat-api"),
        ({"vllm-llama": {"model": {"servedName": "mine"}}}, "global.model.servedName"),
        ({"vllm-llama": {"model": {"name": "org/mine"}}}, "global.model.name"),
        ({"vllm-llama": {"cache": {"hostPath": {"path": "/data"}}}}, "global.node.modelCachePath"),
        ({"vllm-llama": {"securityContext": {"runAsUser": 1}}}, "global.node.uid"),
        ({"chat-api": {"timeouts": {"firstToken": 60}}}, "chat-api.timeouts.firstTokenSeconds"),
        ({"chat-api": {"timeouts": {"total": 60}}}, "chat-api.timeouts.totalSeconds"),
        (
            {"vllm-llama": {"autoscaling": {"cooldownPeriod": 60}}},
            "vllm-llama.autoscaling.cooldownPeriodSeconds",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_retired_key_is_refused_with_the_key_that_replaced_it(old: dict[str, Any], new: str) -> None:
    with pytest.raises(chart.ChartError, match=re.escape(new)) as caught:
        cases.render_with(T4, old)
    assert "no longer a value" in str(caught.value)


def test_the_model_name_is_stated_once_and_every_use_follows_it() -> None:
    model = {"global": {"model": {"name": "meta-llama/Llama-3.2-1B-Instruct", "servedName": "llama-1b"}}}
    manifests, templates = _render_text(model)
    vllm = _container(manifests, "Deployment", "llama-vllm-llama", "vllm")
    assert vllm["args"][vllm["args"].index("--served-model-name") + 1] == "llama-1b"
    assert vllm["args"][0] == "/models/weights/meta-llama/Llama-3.2-1B-Instruct"
    api = _env(_container(manifests, "Deployment", "llama-chat-api", "chat-api"))
    assert api["CHAT_API_DEFAULT_MODEL"] == api["CHAT_API_ALLOWED_MODELS"] == "llama-1b"
    assert _env(_container(manifests, "Pod", "llama-test-completion", "completion"))["MODEL"] == "llama-1b"
    rendered = "\n".join(templates.values())
    assert "llama-3.2-3b-instruct" not in rendered and "Llama-3.2-3B" not in rendered


def test_the_model_name_appears_only_in_the_umbrella_global() -> None:
    restated = []
    for path in [*chart.UMBRELLA.rglob("values.yaml"), *sorted((chart.REPO / "values").glob("*.yaml"))]:
        if path == chart.UMBRELLA / "values.yaml":
            continue
        data = yaml.safe_load(path.read_text()) or {}
        if "model" in (data.get("global") or {}) and path.parent.name != "values":
            restated.append(str(path))
        if "global" in data and path.parent.parent.name == "charts":
            restated.append(f"{path}: a subchart's own global block")
        if "llama-3.2-3b-instruct" in path.read_text():
            restated.append(f"{path}: the served name")
    assert restated == []


def test_the_kv_cache_check_sizes_the_model_by_its_name() -> None:
    # Llama 3.1 8B (from the chart's table) does not fit a T4 at all: the check must know it is 8B.
    with pytest.raises(chart.ChartError, match=r"weights \(8.0 B parameters\).*do not fit the T4"):
        cases.render_with(T4, {"global": {"model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}}})


def test_an_unknown_model_is_refused_unless_its_shape_is_given() -> None:
    unknown = {"global": {"model": {"name": "example/Unknown-2B", "servedName": "unknown"}}}
    with pytest.raises(chart.ChartError) as caught:
        cases.render_with(T4, unknown)
    message = str(caught.value)
    assert '"example/Unknown-2B" is not a model this chart knows' in message
    assert "vllm-llama.model.architecture" in message and "model-shapes.yaml" in message
    shape = {"layers": 26, "kvHeads": 4, "headDim": 128, "paramsBillions": 2.0}
    manifests = cases.render_with(
        T4, chart.deep_merge(unknown, {"vllm-llama": {"model": {"architecture": shape}}})
    )
    assert cases.find(manifests, "Deployment", "llama-vllm-llama")


def test_the_monitoring_switch_asks_the_cluster_one_question() -> None:
    values = chart.merged_values(T4, cases.with_image_registry(T4))

    def monitoring_objects(api_versions: list[str]) -> set[tuple[str, str]]:
        templates = chart.render_templates(values, api_versions=api_versions)
        return {
            (d["kind"], d["metadata"]["name"])
            for source, text in templates.items()
            if source.endswith(".yaml")
            for d in yaml.safe_load_all(text)
            if d and d["kind"] in ("ServiceMonitor", "PrometheusRule")
        }

    # Only the group/version, as a cluster with prometheus-operator's CRDs announces it.
    found = monitoring_objects(["monitoring.coreos.com/v1", "cert-manager.io/v1"])
    monitors = {name for kind, name in found if kind == "ServiceMonitor"}
    assert {"llama-vllm-llama", "llama-chat-api", "llama-dcgm-exporter"} <= monitors
    assert [kind for kind, _ in found if kind == "PrometheusRule"]
    assert monitoring_objects(["cert-manager.io/v1"]) == set()
    questions = set()
    for tpl in chart.UMBRELLA.rglob("*.tpl"):
        questions |= set(re.findall(r'APIVersions\.Has "(monitoring[^"]*)"', tpl.read_text()))
    for tpl in chart.UMBRELLA.rglob("templates/*.yaml"):
        questions |= set(re.findall(r'APIVersions\.Has "(monitoring[^"]*)"', tpl.read_text()))
    assert questions == {"monitoring.coreos.com/v1"}


def test_every_subchart_takes_its_helpers_from_the_one_library() -> None:
    assert yaml.safe_load((LIBRARY / "Chart.yaml").read_text())["type"] == "library"
    for name in SUBCHARTS:
        sub = chart.UMBRELLA / "charts" / name
        deps = [d["name"] for d in yaml.safe_load((sub / "Chart.yaml").read_text()).get("dependencies", [])]
        assert deps == ["platform-lib"], name
        vendored = sub / "charts" / "platform-lib"
        assert vendored.is_symlink() and vendored.resolve() == LIBRARY.resolve(), (
            f"{vendored} must be a symlink to the one library (../../platform-lib)"
        )
        own = OWN_HELPER.findall("".join(p.read_text() for p in (sub / "templates").glob("*.tpl")))
        assert own == [], f"{name} defines its own {own}: use platform-lib's"


def test_every_chart_labels_its_objects_the_same_way() -> None:
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", T4))
    for m in manifests:
        labels = m["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "llama-platform", (m["kind"], m["metadata"]["name"])
        assert labels.get("app.kubernetes.io/instance") == cases.RELEASE
        assert labels.get("app.kubernetes.io/component") != "model-server"
    vllm = cases.find(manifests, "Deployment", "llama-vllm-llama")["metadata"]["labels"]
    assert vllm["app.kubernetes.io/name"] == vllm["app.kubernetes.io/component"] == "vllm-llama"
