"""`python -m scripts.chart template|lint`: what `make template` and `make lint` run."""

from __future__ import annotations

import pytest
import yaml

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart


@pytest.fixture
def aws_user_values(tmp_path) -> str:
    """What a user adds to values/aws-*.yaml: Terraform's edge.yaml and the sign-in settings."""
    path = tmp_path / "edge-and-sign-in.yaml"
    path.write_text(yaml.safe_dump(chart.deep_merge(cases.AWS_EDGE, cases.SIGN_IN)))
    return str(path)


def test_template_prints_every_manifest_with_its_source(
    aws_user_values: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t4 = str(cases.ENV_VALUES_DIR / "aws-t4.yaml")
    registry = f"global.image.registry={cases.IMAGE_REGISTRY}"
    argv = ["template", "--values", t4, "--values", aws_user_values, "--set", registry]
    assert chart.main([*argv, "--release", "demo", "--namespace", "ai"]) == 0
    out = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert ("Deployment", "demo-vllm-llama") in {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert "# Source: platform/charts/vllm-llama/templates/deployment.yaml" in out
    assert all(d["metadata"].get("namespace", "ai") == "ai" for d in docs)


def test_template_merges_several_values_files_in_order(
    tmp_path, aws_user_values: str, capsys: pytest.CaptureFixture[str]
) -> None:
    override = tmp_path / "short-context.yaml"
    override.write_text("vllm-llama:\n  vllm:\n    maxModelLen: 4096\n")
    t4 = str(cases.ENV_VALUES_DIR / "aws-t4.yaml")
    files = ["-f", t4, "-f", aws_user_values, "-f", str(override)]
    assert chart.main(["template", *files, "--set", "global.image.registry=r.example"]) == 0
    deployment = next(
        d
        for d in yaml.safe_load_all(capsys.readouterr().out)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "llama-vllm-llama"
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-model-len") + 1] == "4096"
    assert args[args.index("--dtype") + 1] == "half", (
        "keys the second file leaves alone keep the first's value"
    )


def test_template_exits_non_zero_with_helms_message_on_bad_values(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("vllm-llama:\n  vllm:\n    dtype: bfloat16\n")
    t4 = str(cases.ENV_VALUES_DIR / "aws-t4.yaml")
    assert chart.main(["template", "-f", t4, "-f", str(bad), "--set", "global.image.registry=r.example"]) == 1
    assert "set vllm-llama.vllm.dtype: half" in capsys.readouterr().err


@pytest.mark.parametrize("values_file", ["aws-t4.yaml", "aws-a10g.yaml", "local-cpu.yaml"])
def test_template_without_a_registry_for_the_platform_images_says_to_run_make_images(
    values_file: str, aws_user_values: str, capsys: pytest.CaptureFixture[str]
) -> None:
    user = ["-f", aws_user_values] if values_file.startswith("aws-") else []
    assert chart.main(["template", "-f", str(cases.ENV_VALUES_DIR / values_file), *user]) == 1
    err = capsys.readouterr().err
    assert "The chat-api and chat-ui images are published nowhere" in err
    assert "make images REGISTRY=<registry>" in err and "--set global.image.registry=" in err


def test_helm_lint_is_not_refused_for_want_of_a_registry() -> None:
    assert chart.lint_chart(chart.UMBRELLA) == []


def test_lint_command_lints_every_chart_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code = chart.main(["lint"])
    out = capsys.readouterr().out
    for path in chart.chart_dirs():
        assert str(path.relative_to(chart.REPO)) in out
    assert code == (1 if "FAIL" in out else 0)
