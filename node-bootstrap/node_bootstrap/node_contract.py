"""What the bootstrap makes true on GPU nodes and the platform chart's pods rely on: the GPU
label and taint, the model cache directory and the uid/gid that owns it.

Defined once, in the umbrella chart's values (`global.node` in charts/platform/values.yaml): the
chart reads it there (platform-lib's `platform-lib.node`), the bootstrap parses the same file here,
so changing a value there changes every rendered and bootstrapped use of it
(tests/test_node_contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import yaml

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "platform" / "values.yaml"


@dataclass(frozen=True)
class NodeContract:
    uid: int
    gid: int
    model_cache_path: str
    gpu_label_key: str
    gpu_label_value: str
    gpu_taint_key: str
    gpu_taint_value: str
    gpu_taint_effect: str

    @property
    def gpu_label(self) -> str:
        """`key=value`, as `kubectl label` and the kubelet's --node-labels take it."""
        return f"{self.gpu_label_key}={self.gpu_label_value}"

    @property
    def gpu_taint(self) -> str:
        """`key=value:effect`, as `kubectl taint` takes it."""
        return f"{self.gpu_taint_key}={self.gpu_taint_value}:{self.gpu_taint_effect}"

    @property
    def model_cache_mount(self) -> str:
        """Where the NVMe instance store is mounted: the cache directory's parent."""
        return str(PurePosixPath(self.model_cache_path).parent)

    @property
    def owner(self) -> str:
        return f"{self.uid}:{self.gid}"


def parse(values_file: Path) -> NodeContract:
    """`global.node` of a chart values file; a ValueError names the key and the file when it is not there."""
    data = yaml.safe_load(values_file.read_text(encoding="utf-8")) or {}
    node = (data.get("global") or {}).get("node")
    if not isinstance(node, dict):
        raise ValueError(f"{values_file}: global.node is missing; it holds the GPU node contract")
    try:
        label, taint = node["gpuLabel"], node["gpuTaint"]
        contract = NodeContract(
            uid=int(node["uid"]),
            gid=int(node["gid"]),
            model_cache_path=str(node["modelCachePath"]),
            gpu_label_key=str(label["key"]),
            gpu_label_value=str(label["value"]),
            gpu_taint_key=str(taint["key"]),
            gpu_taint_value=str(taint["value"]),
            gpu_taint_effect=str(taint["effect"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{values_file}: global.node lacks {exc}; see the chart's values.yaml") from exc
    path = PurePosixPath(contract.model_cache_path)
    if not path.is_absolute() or len(path.parts) < 3:
        raise ValueError(
            f"{values_file}: global.node.modelCachePath {contract.model_cache_path!r} must be an absolute "
            "directory below a mount point, e.g. /mnt/model-cache/vllm"
        )
    return contract


@cache
def load() -> NodeContract:
    """The contract of this checkout (charts/platform/values.yaml)."""
    return parse(CHART_VALUES)
