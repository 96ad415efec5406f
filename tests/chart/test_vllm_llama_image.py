"""services/vllm-llama/Dockerfile: hadolint clean, on the same pinned vLLM tag as the chart's
default image, and the Hugging Face token only ever as a BuildKit secret."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from scripts import chart

pytestmark = pytest.mark.chart

DOCKERFILE = chart.REPO / "services" / "vllm-llama" / "Dockerfile"
HADOLINT = chart.REPO / ".venv" / "bin" / "hadolint"


def test_vllm_llama_dockerfile_is_hadolint_clean() -> None:
    if not HADOLINT.exists():
        pytest.skip(f"hadolint is not installed at {HADOLINT}: run `make deps`")
    proc = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vllm_llama_builds_on_the_vllm_image_the_chart_pins() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    (version,) = re.findall(r"^ARG VLLM_VERSION=(\S+)$", text, flags=re.MULTILINE)
    vllm_chart = chart.UMBRELLA / "charts" / "vllm-llama"
    image = yaml.safe_load((vllm_chart / "values.yaml").read_text())["image"]
    app_version = yaml.safe_load((vllm_chart / "Chart.yaml").read_text())["appVersion"]
    assert base.replace("${VLLM_VERSION}", version) == f"{image['repository']}:v{app_version}"


def test_vllm_llama_takes_the_token_only_as_a_build_secret() -> None:
    text = DOCKERFILE.read_text()
    assert "--mount=type=secret,id=hf_token" in text
    declared = re.findall(r"^(?:ARG|ENV)\s+.*$", text, flags=re.MULTILINE)
    assert not [line for line in declared if "TOKEN" in line.upper()], (
        "a token in ARG/ENV ends up in the image"
    )
