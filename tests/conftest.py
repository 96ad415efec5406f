"""Test tiers shared by the whole repository.

Every test carries one tier marker (unit, chart, integration, e2e, cluster, aws); see
pyproject.toml. `make test` runs every tier this machine can run. A tier that cannot run
here is skipped with the reason, never faked green.
"""

from __future__ import annotations

import pytest

# Fixtures shared across components (real vLLM CPU, real chat-api) live in tests/fixtures/.
pytest_plugins = ["tests.fixtures.stack"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-aws",
        action="store_true",
        default=False,
        help="run the aws tier against a real AWS account (needs credentials; creates billable resources)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-aws"):
        return
    skip_aws = pytest.mark.skip(reason="aws tier runs only with --run-aws (real AWS, billable)")
    for item in items:
        if "aws" in item.keywords:
            item.add_marker(skip_aws)
