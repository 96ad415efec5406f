"""The repository's linters, so CI fails on what `make lint` would report.

Each linter is a test of its own; one that is not installed here is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.local_run.process import REPO_ROOT

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


def test_workflows_pass_actionlint() -> None:
    workflows = tracked(".github/workflows/*.yml", ".github/workflows/*.yaml")
    assert workflows, "the release workflow is tracked"
    run(["actionlint", "-no-color", *workflows])


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("tags: [", "tagz: [", 'unexpected key "tagz" for "push" section'),
        ("${{ matrix.image.name }}", "${{ matrix.image.nmae }}", 'property "nmae" is not defined'),
        ("contents: read", "contents: reed", '"reed" is invalid as permission of scope "contents"'),
        ("runs-on: ubuntu-24.04", "runs-on: ubuntu-2404", 'label "ubuntu-2404" is unknown'),
        ('test -n "$digest"', "test -n $digest", "shellcheck reported issue in this script: SC2086"),
        (
            "needs: [version, images]",
            "needs: [version, imgaes]",
            'job "chart" needs job "imgaes" which does not exist',
        ),
    ],
    ids=["trigger", "expression", "permission", "runner", "shell", "needs"],
)
def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path, old: str, new: str, said: str) -> None:
    """The lint above can fail: the release workflow with one mistake is refused, with the reason."""
    actionlint = VENV_BIN / "actionlint"
    assert actionlint.exists(), "actionlint is pinned in requirements/dev.txt: run `make deps`"
    text = (REPO_ROOT / ".github/workflows/release.yml").read_text()
    assert old in text
    broken = tmp_path / ".github/workflows/release.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1))
    result = subprocess.run(
        [str(actionlint), "-no-color", str(broken)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert said in result.stdout, result.stdout
