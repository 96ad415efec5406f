"""Session fixtures of the chart tier. checkov starts in the background as soon as the first
chart test runs, and the tests that read its report run last, so its ~10 s overlap the rest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chart import cases, checkov_scan


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reads_report = [item for item in items if "checkov_report" in getattr(item, "fixturenames", ())]
    if reads_report:
        items[:] = [item for item in items if item not in reads_report] + reads_report


@pytest.fixture(scope="session")
def checkov_scan_started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[checkov_scan.Scan | None]:
    if not checkov_scan.CHECKOV.exists():
        yield None
        return
    rendered = {case.name: cases.rendered(case) for case in cases.all_cases()}
    scan = checkov_scan.Scan(rendered, tmp_path_factory.mktemp("checkov"))
    yield scan
    scan.stop()


@pytest.fixture(autouse=True)
def _start_checkov_early(request: pytest.FixtureRequest) -> None:
    # Only for chart-tier runs: a run of another tier must not pay for checkov.
    if request.node.get_closest_marker("chart"):
        request.getfixturevalue("checkov_scan_started")


@pytest.fixture(scope="session")
def checkov_report(checkov_scan_started: checkov_scan.Scan | None) -> checkov_scan.Report:
    if checkov_scan_started is None:
        pytest.skip(
            f"checkov is not installed at {checkov_scan.CHECKOV}: run `make .venv-checkov/.installed`"
        )
    return checkov_scan_started.report()
