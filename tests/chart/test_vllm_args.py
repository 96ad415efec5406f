"""vLLM's own parser checks the chart: every `vllm serve` command line the chart renders, for every
values case, is parsed by the argument parser of the pinned vLLM release (the CPU build in
.venv-vllm shares it with the GPU image), so a misspelt or removed flag fails here, not on a GPU
node. One subprocess parses every case (importing vLLM takes seconds)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts import chart
from tests.chart import cases, vllm_release

pytestmark = pytest.mark.chart

VLLM_PYTHON = chart.REPO / ".venv-vllm" / "bin" / "python"
CHECKER = Path(__file__).with_name("vllm_argv_check.py")
T4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)

# Deliberate mistakes on top of values/aws-t4.yaml, each with what the check must say.
TYPOS: dict[str, tuple[dict[str, Any], str]] = {
    "typo: abbreviated flag argparse alone would accept": (
        {"extraArgs": ["--enable-prefix-cach"]},
        "--enable-prefix-cach: vLLM has no such option",
    ),
    "typo: misspelt flag": ({"extraArgs": ["--max-num-seq", "8"]}, "--max-num-seq: vLLM has no such option"),
    "typo: attention backend": ({"attentionBackend": "TRITON_ATN"}, "--attention-backend TRITON_ATN"),
    "typo: dtype value": ({"extraArgs": ["--kv-cache-dtype", "fp9"]}, "invalid choice: 'fp9'"),
}


def _command(manifests: list[dict[str, Any]]) -> list[str] | None:
    container = vllm_release.vllm_container(manifests)
    return None if container is None else [*container["command"], *container["args"]]


@pytest.fixture(scope="module")
def verdict() -> dict[str, Any]:
    if not VLLM_PYTHON.exists():
        reason = f"vLLM CPU is not installed at {VLLM_PYTHON}: run `make deps-local`"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    commands = {case.name: cmd for case in cases.all_cases() if (cmd := _command(cases.rendered(case)))}
    for name, (vllm_values, _) in TYPOS.items():
        commands[name] = _command(cases.render_with(T4, {"vllm-llama": {"vllm": vllm_values}}))
    proc = subprocess.run(
        [str(VLLM_PYTHON), str(CHECKER)],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR", "VLLM_NO_USAGE_STATS": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_the_parser_is_the_vllm_release_the_chart_deploys(verdict: dict[str, Any]) -> None:
    assert verdict["vllm_version"] == vllm_release.chart_release() == vllm_release.ci_release()


@pytest.mark.parametrize("case", cases.all_cases(), ids=lambda c: c.name)
def test_vllm_accepts_the_command_line_rendered_for_every_values_case(
    case: cases.Case, verdict: dict[str, Any]
) -> None:
    if case.name not in verdict["problems"]:
        pytest.skip(f"{case.name} does not install vllm-llama")
    assert verdict["problems"][case.name] == []


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_a_deliberate_typo_in_the_vllm_arguments_fails_the_check(typo: str, verdict: dict[str, Any]) -> None:
    problems = verdict["problems"][typo]
    expected = TYPOS[typo][1]
    assert any(expected in p for p in problems), problems
