"""Every chart's values.schema.json and its documented values.yaml describe the same keys, both ways.

No generator installs here that would keep the schemas' constraints (the enums, patterns and ranges the
render-time checks rely on; @bitnami/readme-generator-for-helm reads `## @param` comments and writes
types only), so the schemas stay hand-written and this test ties them to the values: a value the
schema does not know is refused by Helm at install, and a schema entry no values.yaml documents is a
knob nobody can find. A key a values file does not set by default (an optional map such as
strategy.rollingUpdate) counts as documented when its dotted path is named in that file's comments.
Retired keys stay in the schema as `"deprecated": true` so that the chart's `fail` sentence, not a
schema error, tells a user where the setting moved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import chart

pytestmark = pytest.mark.chart

CHARTS = sorted(p.parent for p in chart.UMBRELLA.rglob("values.schema.json") if "platform-lib" not in p.parts)


def value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict):
            yield from value_paths(value, path + ".")


def schema_knows(schema: dict[str, Any], path: list[str]) -> bool:
    """Whether the schema has an entry for `path` (a free-form object covers everything below it)."""
    node = schema
    for key in path:
        props = node.get("properties")
        if props is not None and key in props:
            node = props[key]
            continue
        extra = node.get("additionalProperties", True if props is None else False)
        return extra is not False
    return True


def schema_paths(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{key}"
        yield path, sub
        if not sub.get("deprecated"):
            yield from schema_paths(sub, path + ".")


def _load(chart_dir: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    text = (chart_dir / "values.yaml").read_text()
    return yaml.safe_load(text) or {}, text, json.loads((chart_dir / "values.schema.json").read_text())


def unknown_to_schema(chart_dir: Path) -> list[str]:
    values, _, schema = _load(chart_dir)
    return [p for p in value_paths(values) if not schema_knows(schema, p.split("."))]


def undocumented_schema_entries(chart_dir: Path) -> list[str]:
    values, text, schema = _load(chart_dir)
    documented = set(value_paths(values))
    missing = []
    for path, entry in schema_paths(schema):
        if path == "platform-lib":
            continue  # Helm's own key for the library chart's (empty) values
        if entry.get("deprecated") or path in documented or path in text:
            continue
        if path == "enabled" and chart_dir != chart.UMBRELLA:
            continue  # the umbrella's `<subchart>.enabled` switch, documented there
        if path.startswith("global") and chart_dir != chart.UMBRELLA:
            continue  # the umbrella's; documented in its values.yaml
        missing.append(path)
    return missing


@pytest.mark.parametrize("chart_dir", CHARTS, ids=lambda p: p.name)
def test_every_documented_value_has_a_schema_entry(chart_dir: Path) -> None:
    assert unknown_to_schema(chart_dir) == []


@pytest.mark.parametrize("chart_dir", CHARTS, ids=lambda p: p.name)
def test_every_schema_entry_is_a_documented_value(chart_dir: Path) -> None:
    assert undocumented_schema_entries(chart_dir) == []


def test_the_match_finds_a_drift_in_either_direction(tmp_path: Path) -> None:
    (tmp_path / "values.yaml").write_text("# -- a\na: 1\nb:\n  # -- c\n  c: 2\n")
    (tmp_path / "values.schema.json").write_text(
        json.dumps(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "a": {"type": "integer"},
                    "b": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"d": {"type": "integer"}},
                    },
                },
            }
        )
    )
    assert unknown_to_schema(tmp_path) == ["b.c"]
    assert undocumented_schema_entries(tmp_path) == ["b.d"]
