"""The UI's own unit tests (Vitest: stream parser, conversation store, error mapping, Markdown safety),
run from pytest so `make test` covers them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from scripts.local_run.process import REPO_ROOT

UI_DIR = REPO_ROOT / "ui"

pytestmark = pytest.mark.unit


def test_vitest_suite_of_the_ui_passes() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (Node 20+ is needed for the UI)")
    if not (UI_DIR / "node_modules" / "vitest").is_dir():
        pytest.skip("ui/node_modules is missing: run `make deps-local` (npm ci in ui/)")
    result = subprocess.run(
        ["npm", "test", "--", "--reporter=dot"], cwd=UI_DIR, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"npm test failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert " passed" in result.stdout, result.stdout[-2000:]


def test_typescript_typecheck_of_the_ui_passes() -> None:
    if not (UI_DIR / "node_modules" / "typescript").is_dir():
        pytest.skip("ui/node_modules is missing: run `make deps-local` (npm ci in ui/)")
    typecheck = ["npm", "run", "typecheck"]
    result = subprocess.run(typecheck, cwd=UI_DIR, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"tsc found errors:\n{result.stdout[-6000:]}"
