"""Environment values files (values/*.yaml) hold only what differs from the chart's defaults: a key
that restates a default is a second place to edit for every tuning change, and the two drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart


def chart_defaults() -> dict[str, Any]:
    """What `helm install ./charts/platform` uses with no -f: the umbrella's values with each
    subchart's own values.yaml under its key (the umbrella's block winning, as Helm merges them)."""
    defaults = chart.load_values_file(chart.UMBRELLA / "values.yaml")
    for sub in sorted((chart.UMBRELLA / "charts").iterdir()):
        if (sub / "values.yaml").exists():
            defaults[sub.name] = chart.deep_merge(
                chart.load_values_file(sub / "values.yaml"), defaults.get(sub.name, {})
            )
    return defaults


def restated_defaults(values: dict[str, Any], defaults: dict[str, Any], path: str = "") -> Iterator[str]:
    """Dotted keys of `values` whose value equals the default at the same place."""
    for key, value in values.items():
        if key not in defaults:
            continue
        default = defaults[key]
        where = f"{path}{key}"
        if isinstance(value, dict) and isinstance(default, dict) and value:
            yield from restated_defaults(value, default, where + ".")
        elif value == default:
            yield where


@pytest.mark.parametrize("values_file", cases.env_values_files(), ids=lambda p: p.name)
def test_an_environment_file_states_only_what_differs_from_the_defaults(values_file: Path) -> None:
    values = yaml.safe_load(values_file.read_text()) or {}
    assert list(restated_defaults(values, chart_defaults())) == [], (
        f"{values_file.name} restates the chart's defaults: remove these keys"
    )


def test_the_check_finds_a_restated_default() -> None:
    values = {
        "vllm-llama": {"vllm": {"dtype": "half", "maxModelLen": 4096}, "enabled": True},
        "global": {"model": {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "other"}},
    }
    assert sorted(restated_defaults(values, chart_defaults())) == [
        "global.model.name",
        "vllm-llama.enabled",
        "vllm-llama.vllm.dtype",
    ]
