"""The repository's linters, so CI fails on what `make lint` would report.

Each linter is a test of its own; one that is not installed here is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.localstack.process import REPO_ROOT

pytestmark = pytest.mark.unit

VENV_BIN = Path(sys.executable).parent


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *patterns], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def run(argv: list[str]) -> None:
    tool = argv[0]
    if shutil.which(tool) is None and not (VENV_BIN / tool).exists():
        pytest.skip(
            f"{tool} is not installed here (`make deps` installs the Python ones; apt for shellcheck)"
        )
    binary = str(VENV_BIN / tool) if (VENV_BIN / tool).exists() else tool
    result = subprocess.run([binary, *argv[1:]], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(argv)} found problems:\n{result.stdout}\n{result.stderr}"


def test_python_passes_ruff() -> None:
    run(["ruff", "check", "."])


def test_python_is_ruff_formatted() -> None:
    run(["ruff", "format", "--check", "."])


def test_values_and_scenarios_pass_yamllint() -> None:
    run(["yamllint", "-s", "values", "charts/platform/ci", "tests/chart/checkov-skips.yaml"])


def test_dockerfiles_pass_hadolint() -> None:
    run(["hadolint", *tracked("*Dockerfile*")])


def test_shell_scripts_pass_shellcheck() -> None:
    run(["shellcheck", "-x", *tracked("*.sh"), ".ci/run"])
