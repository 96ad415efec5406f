"""The GPU node contract across tiers: the label and taint of GPU nodes, the model cache directory and
the uid/gid that owns it are defined once, in `global.node` of charts/platform/values.yaml. The chart
reads it there (platform-lib) and node-bootstrap parses the same file (node_bootstrap/node_contract.py).

One test compares what each side actually produces (rendered manifests against rendered kubeadm join
configuration and node.env) and fails when they disagree; the others change the one place in a copy
of the chart and check that every rendered and bootstrapped use follows.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_bootstrap import node_contract
from node_bootstrap.inventory import parse_inventory
from node_bootstrap.render import kubeadm_join_config
from node_bootstrap.settings import Settings, node_env

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = (chart.REPO / "values" / "aws-t4.yaml",)
INVENTORY = {
    "cluster_name": "llama",
    "kubernetes_version": "v1.29.15",
    "region": "eu-west-1",
    "ssh_user": "ubuntu",
    "nodes": [
        {
            "name": "llama-cp-1",
            "role": "control-plane",
            "public_ip": "203.0.113.10",
            "private_ip": "10.10.0.10",
            "instance_id": "i-0aaa00000000000a1",
        },
        {
            "name": "llama-gpu-1",
            "role": "gpu-worker",
            "public_ip": "203.0.113.12",
            "private_ip": "10.10.2.12",
            "instance_id": "i-0aaa00000000000a3",
        },
    ],
}


@dataclass(frozen=True)
class NodeFacts:
    """The GPU node facts as one side produces them."""

    label: tuple[str, str]
    taint: tuple[str, str]  # key and effect: what a toleration matches (operator Exists)
    cache_dir: str
    owner: str


def bootstrapped() -> tuple[NodeFacts, dict[str, str]]:
    """What node-bootstrap puts on a GPU node: its kubeadm join registration and node.env."""
    inventory = parse_inventory(INVENTORY)
    join = yaml.safe_load(kubeadm_join_config(inventory.node("llama-gpu-1"), "10.10.0.10:6443", "t", "h"))
    env = node_env(Settings(), inventory)
    registration = join["nodeRegistration"]
    key, _, value = registration["kubeletExtraArgs"]["node-labels"].partition("=")
    (taint,) = registration["taints"]
    facts = NodeFacts(
        label=(key, value),
        taint=(taint["key"], taint["effect"]),
        cache_dir=env["NODE_BOOTSTRAP_VLLM_CACHE_DIR"],
        owner=env["NODE_BOOTSTRAP_VLLM_CACHE_OWNER"],
    )
    return facts, env


GPU_WORKLOADS = ("llama-vllm-llama", "llama-nvidia-device-plugin", "llama-dcgm-exporter")


def pods_on_gpu_nodes(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pod specs of the workloads that run on GPU nodes (vLLM, the device plugin, DCGM exporter)."""
    return {
        m["metadata"]["name"]: m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "DaemonSet") and m["metadata"]["name"] in GPU_WORKLOADS
    }


def rendered(manifests: list[dict[str, Any]]) -> NodeFacts:
    """What the chart's GPU pods rely on; each pod must agree with the others, else AssertionError."""
    gpu_pods = pods_on_gpu_nodes(manifests)
    assert set(gpu_pods) == set(GPU_WORKLOADS)
    selectors = {tuple(sorted(spec["nodeSelector"].items())) for spec in gpu_pods.values()}
    assert len(selectors) == 1, f"GPU pods select different labels: {selectors}"
    ((label,),) = selectors
    tolerated = {
        (t["key"], t["effect"], t["operator"], t.get("value"))
        for spec in gpu_pods.values()
        for t in spec["tolerations"]
    }
    assert len(tolerated) == 1, f"GPU pods tolerate different taints: {tolerated}"
    ((key, effect, operator, value),) = tolerated
    assert operator == "Exists" and value is None, (
        "the chart tolerates the bootstrap's taint, whatever its value"
    )
    vllm = gpu_pods["llama-vllm-llama"]
    (volume,) = [v for v in vllm["volumes"] if v["name"] == "models"]
    security = vllm["securityContext"]
    assert security["fsGroup"] == security["runAsGroup"]
    return NodeFacts(
        label=label,
        taint=(key, effect),
        cache_dir=volume["hostPath"]["path"],
        owner=f"{security['runAsUser']}:{security['runAsGroup']}",
    )


def test_the_chart_and_the_bootstrap_agree_on_every_gpu_node_fact() -> None:
    chart_side = rendered(cases.rendered(cases.Case("values/aws-t4.yaml", T4)))
    bootstrap_side, env = bootstrapped()
    assert chart_side == bootstrap_side
    # The bootstrap mounts the instance store at the cache directory's parent and creates the directory.
    assert Path(env["NODE_BOOTSTRAP_VLLM_CACHE_DIR"]).parent == Path(env["NODE_BOOTSTRAP_MODEL_CACHE_DIR"])
    assert env["NODE_BOOTSTRAP_GPU_LABEL"] == "=".join(bootstrap_side.label)
    key, effect = bootstrap_side.taint
    taint = env["NODE_BOOTSTRAP_GPU_TAINT"]
    assert taint.startswith(f"{key}=") and taint.endswith(f":{effect}")


def test_the_comparison_fails_when_one_side_states_a_fact_of_its_own() -> None:
    # As if the chart tolerated a taint of its own instead of the bootstrap's.
    drifted = cases.render_with(
        T4,
        {
            "vllm-llama": {"gpu": {"tolerations": []}},
            "global": {
                "gpu": {
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}]
                }
            },
        },
    )
    assert rendered(drifted) != bootstrapped()[0]


def _edited_chart(tmp_path: Path, edit: dict[str, Any]) -> Path:
    """A copy of charts/platform whose values.yaml has `edit` merged into global.node: the one place."""
    copy = tmp_path / "platform"
    shutil.copytree(chart.UMBRELLA, copy, symlinks=True)
    values_file = copy / "values.yaml"
    lines = values_file.read_text().splitlines(keepends=True)
    data = yaml.safe_load("".join(lines))
    before = data["global"]["node"]
    after = chart.deep_merge(before, edit)
    start = lines.index("  node:\n")
    # Edit the text of the global.node block in place (keeping the comments), in file order.
    for old, new in _leaf_pairs(before, after):
        for i in range(start, len(lines)):
            match = re.match(r"^(\s+\w+: )(\"?)(.*?)(\"?)\n$", lines[i])
            if match and match.group(3) == _yaml_scalar(old):
                lines[i] = f"{match.group(1)}{json.dumps(new)}\n"
                start = i + 1
                break
        else:
            raise AssertionError(f"global.node value {old!r} not found in {values_file}")
    values_file.write_text("".join(lines))
    assert yaml.safe_load(values_file.read_text())["global"]["node"] == after
    return copy


def _yaml_scalar(value: Any) -> str:
    """How a scalar is written in values.yaml (without quotes)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _leaf_pairs(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[Any, Any]]:
    pairs = []
    for key, value in before.items():
        if isinstance(value, dict):
            pairs += _leaf_pairs(value, after[key])
        elif after[key] != value:
            pairs.append((value, after[key]))
    return pairs


def _render(chart_dir: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    values = chart.merged_values(T4, cases.with_image_registry(T4))
    templates = chart.render_templates(values, cases.RELEASE, cases.NAMESPACE, chart_dir=chart_dir)
    docs = [
        d
        for source, text in sorted(templates.items())
        if source.endswith(".yaml")
        for d in yaml.safe_load_all(text)
        if d
    ]
    return docs, templates


@pytest.fixture
def edited_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def edit(
        change: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], dict[str, str], NodeFacts, dict[str, str]]:
        copy = _edited_chart(tmp_path, change)
        monkeypatch.setattr(node_contract, "CHART_VALUES", copy / "values.yaml")
        node_contract.load.cache_clear()
        manifests, templates = _render(copy)
        facts, env = bootstrapped()
        return manifests, templates, facts, env

    yield edit
    node_contract.load.cache_clear()


def test_changing_the_cache_path_in_the_one_place_changes_every_use(edited_contract) -> None:
    manifests, templates, bootstrap_side, env = edited_contract(
        {"modelCachePath": "/srv/llm-cache/weights", "uid": 20002, "gid": 20003}
    )
    text = "\n".join(templates.values())
    chart_side = rendered(manifests)
    assert chart_side.cache_dir == bootstrap_side.cache_dir == "/srv/llm-cache/weights"
    assert chart_side.owner == bootstrap_side.owner == "20002:20003"
    assert env["NODE_BOOTSTRAP_MODEL_CACHE_DIR"] == "/srv/llm-cache"
    assert "/mnt/model-cache" not in text, "a rendered use kept the old value"
    # chat-api's 10001 is its own image's user (services/chat-api/Dockerfile), not the node's.
    node_side = [source for source in templates if not source.startswith("platform/charts/chat-api/")]
    assert [source for source in node_side if "10001" in templates[source]] == []
    (test_pod,) = [m for m in manifests if m["kind"] == "Pod"]
    assert test_pod["spec"]["securityContext"]["runAsUser"] == 20002


def test_changing_the_gpu_taint_and_label_in_the_one_place_changes_every_use(edited_contract) -> None:
    manifests, templates, bootstrap_side, env = edited_contract(
        {
            "gpuLabel": {"key": "example.com/accelerator", "value": "t4"},
            "gpuTaint": {"key": "example.com/gpu-only", "value": "yes", "effect": "NoExecute"},
        }
    )
    chart_side = rendered(manifests)
    assert chart_side.taint == bootstrap_side.taint == ("example.com/gpu-only", "NoExecute")
    assert chart_side.label == bootstrap_side.label == ("example.com/accelerator", "t4")
    assert env["NODE_BOOTSTRAP_GPU_TAINT"] == "example.com/gpu-only=yes:NoExecute"
    assert env["NODE_BOOTSTRAP_GPU_LABEL"] == "example.com/accelerator=t4"
    text = "\n".join(templates.values())
    assert "gpu.present" not in text and "NoSchedule" not in text, "a rendered use kept the old value"


def test_node_bootstrap_refuses_a_contract_without_a_cache_directory_below_a_mount(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    data = yaml.safe_load((chart.UMBRELLA / "values.yaml").read_text())
    data["global"]["node"]["modelCachePath"] = "/vllm"
    values.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"global.node.modelCachePath '/vllm' must be an absolute directory"):
        node_contract.parse(values)
