"""`helm lint --strict` of every chart directory: the umbrella and each subchart on its own
(Helm's lint does not descend into subcharts), found under charts/ without a list to maintain."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import chart

pytestmark = pytest.mark.chart


@pytest.mark.parametrize("chart_dir", chart.chart_dirs(), ids=lambda p: p.name)
def test_chart_lints_clean_in_strict_mode(chart_dir: Path) -> None:
    assert chart.lint_chart(chart_dir) == []


def test_every_subchart_directory_is_a_dependency_of_the_umbrella() -> None:
    import yaml

    declared = {
        d["name"] for d in yaml.safe_load((chart.UMBRELLA / "Chart.yaml").read_text())["dependencies"]
    }
    present = {p.name for p in (chart.UMBRELLA / "charts").iterdir() if (p / "Chart.yaml").exists()}
    assert present <= declared, (
        f"add these to charts/platform/Chart.yaml dependencies: {sorted(present - declared)}"
    )


def test_every_subchart_is_switched_by_its_enabled_value() -> None:
    import yaml

    meta = yaml.safe_load((chart.UMBRELLA / "Chart.yaml").read_text())
    values = yaml.safe_load((chart.UMBRELLA / "values.yaml").read_text())
    for dep in meta["dependencies"]:
        sub_meta = yaml.safe_load((chart.UMBRELLA / "charts" / dep["name"] / "Chart.yaml").read_text())
        if sub_meta.get("type") == "library":
            continue  # renders nothing: nothing to switch
        assert dep.get("condition") == f"{dep['name']}.enabled", dep
        assert isinstance(values.get(dep["name"], {}).get("enabled"), bool), (
            f"{dep['name']}.enabled in values.yaml"
        )


def test_lint_command_exits_non_zero_on_a_broken_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "charts" / "broken"
    (broken / "templates").mkdir(parents=True)
    (broken / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    (broken / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.x.y }}\n"
    )
    monkeypatch.setattr(chart, "CHARTS_DIR", tmp_path / "charts")
    monkeypatch.setattr(chart, "REPO", tmp_path)
    assert chart.main(["lint"]) == 1
