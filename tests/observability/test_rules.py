"""The platform's Prometheus rules: promtool accepts them, every alert fires and resolves on synthetic
series, and every alert leads to a runbook section that exists."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.observability import support

pytestmark = pytest.mark.unit

ALERTS_TEST = support.DATA / "alerts_test.yaml"


@pytest.fixture
def rules(tmp_path: Path) -> tuple[list[Path], list[dict]]:
    return support.rendered_rules(tmp_path)


def test_rule_files_pass_promtool_check(rules: tuple[list[Path], list[dict]]) -> None:
    paths, _ = rules
    result = support.run_promtool("check", "rules", *map(str, paths))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_resolves_in_promtool_unit_tests(tmp_path: Path) -> None:
    support.rendered_rules(tmp_path)  # writes tmp_path/rules/*.yaml, where the test file expects them
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    result = support.run_promtool("test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_cover_each_alert_firing_then_resolved(rules: tuple[list[Path], list[dict]]) -> None:
    _, groups = rules
    cases = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    fired: dict[str, list[str]] = {}
    for case in cases:
        checks = sorted(case.get("alert_rule_test", []), key=lambda c: _minutes(c["eval_time"]))
        for index, check in enumerate(checks):
            later = [c for c in checks[index + 1 :] if c["alertname"] == check["alertname"]]
            if check["exp_alerts"] and any(not c["exp_alerts"] for c in later):
                fired.setdefault(check["alertname"], []).append(case.get("name", "?"))
    missing = sorted({a["alert"] for a in support.alerts(groups)} - fired.keys())
    assert not missing, f"alerts without a unit test that fires and later resolves them: {missing}"


def test_every_promised_alert_exists(rules: tuple[list[Path], list[dict]]) -> None:
    _, groups = rules
    names = {a["alert"] for a in support.alerts(groups)}
    assert support.REQUIRED_ALERTS <= names, f"missing alerts: {sorted(support.REQUIRED_ALERTS - names)}"


def test_every_alert_has_severity_summary_and_a_runbook_section_that_exists(
    rules: tuple[list[Path], list[dict]],
) -> None:
    _, groups = rules
    anchors = {
        _github_anchor(line[3:])
        for line in support.RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for alert in support.alerts(groups):
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert alert["annotations"]["summary"], name
        url = alert["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("/docs/runbooks.md"), f"{name}: {url}"
        anchor = url.split("#", 1)[1]
        assert anchor == name.lower(), f"{name}: anchor {anchor!r}"
        assert anchor in anchors, f"{name}: docs/runbooks.md has no section `## {name}`"


def test_each_runbook_says_how_to_confirm_and_fix() -> None:
    sections = re.split(r"^## ", support.RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]
    assert {s.split("\n", 1)[0].strip() for s in sections} >= support.REQUIRED_ALERTS
    for section in sections:
        title = section.split("\n", 1)[0]
        assert "**Confirm.**" in section and "**Fix.**" in section, f"runbook {title} lacks Confirm/Fix"


def test_rule_sources_keep_no_placeholder_after_rendering(rules: tuple[list[Path], list[dict]]) -> None:
    paths, _ = rules
    for path in paths:
        leftover = re.findall(r"%[A-Z_]+%", path.read_text())
        assert not leftover, f"{path.name}: placeholders the chart does not fill: {leftover}"


def test_local_rules_leave_out_the_gpu_group(tmp_path: Path) -> None:
    paths, groups = support.rendered_rules(tmp_path, include_gpu=False)
    assert [p.stem for p in paths] == ["chat-api", "vllm"]
    assert not [a for a in support.alerts(groups) if a["alert"].startswith(("GPU", "NoAllocatable"))]


def _minutes(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()  # type: ignore[union-attr]
    return int(value) * {"s": 1 / 60, "m": 1, "h": 60}[unit]


def _github_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, spaces to dashes, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
