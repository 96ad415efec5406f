"""Shared helpers of the observability tests: the dashboards and rules as data, PromQL metric names,
Grafana's variable substitution, and promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from scripts.local_run.prometheus import DASHBOARDS_CHART, RULES_DIR, render_rule_files

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = DASHBOARDS_CHART / "dashboards"
GPU_CHART = REPO_ROOT / "charts" / "platform" / "charts" / "gpu-operator-lite"
DATA = Path(__file__).parent / "data"
DCGM_COUNTERS_UPSTREAM = DATA / "dcgm-exporter-4.5.3-4.8.2-default-counters.csv"
KSM_METRICS = DATA / "kube-state-metrics-node-metrics.txt"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"

# The alerts the platform promises (issue 6); the rules may add more, never fewer.
REQUIRED_ALERTS = {
    "VLLMDown",
    "VLLMQueueBacklog",
    "VLLMTimeToFirstTokenP99High",
    "VLLMKVCacheAlmostFull",
    "VLLMPreemptions",
    "GPUTemperatureHigh",
    "GPUXidError",
    "NoAllocatableGPU",
    "ChatAPIHigh5xxRatio",
}


# ------------------------------------------------------------------------------------------- promtool


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# ------------------------------------------------------------------------------------------- rules


def rule_groups(rules_dir: Path) -> list[dict]:
    groups: list[dict] = []
    for path in sorted(rules_dir.glob("*.yaml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def rendered_rules(tmp_path: Path, include_gpu: bool = True) -> tuple[list[Path], list[dict]]:
    """The chart's rule files with placeholders filled (as the chart fills them), and their groups."""
    out = tmp_path / "rules"
    paths = render_rule_files(out, include_gpu=include_gpu)
    return paths, rule_groups(out)


def alerts(groups: Sequence[Mapping]) -> list[dict]:
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def recordings(groups: Sequence[Mapping]) -> list[dict]:
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


def source_rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yaml"))


# ------------------------------------------------------------------------------------------- dashboards


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref_id: str
    expr: str


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: Mapping) -> Iterator[dict]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def targets(path: Path) -> list[Target]:
    board = load_dashboard(path)
    return [
        Target(path.stem, panel["title"], target["refId"], target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def all_targets() -> list[Target]:
    return [target for path in dashboard_files() for target in targets(path)]


def variables(dashboard: Mapping) -> dict[str, dict]:
    return {var["name"]: var for var in dashboard.get("templating", {}).get("list", [])}


# ------------------------------------------------------------------------------------------- PromQL names

_FUNCTIONS_AND_KEYWORDS = {
    # aggregations and their modifiers
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    # functions used or likely in dashboards
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "absent",
    "absent_over_time",
    "vector",
    "scalar",
    "label_replace",
    "label_join",
    "clamp_min",
    "clamp_max",
    "changes",
    "resets",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "time",
    "timestamp",
    "abs",
    "ceil",
    "floor",
    "round",
    "sort",
    "sort_desc",
    "predict_linear",
    "sgn",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "label_values",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_NUMBER_SUFFIX = re.compile(r"\b\d+(\.\d+)?([eE][+-]?\d+)?[a-z]*\b")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (Grafana variables already substituted or not).

    Strings, label matchers, range selectors and grouping clauses are removed first, so only the
    selectors' metric names remain besides function names and keywords.
    """
    text = re.sub(r"\$\{?\w+\}?", "1m", expr)  # a variable left in the text reads as a duration
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _NUMBER_SUFFIX.sub("", text)
    return {name for name in _IDENT.findall(text) if name not in _FUNCTIONS_AND_KEYWORDS}


def dcgm_fields(path: Path, include_commented: bool) -> set[str]:
    """DCGM field names of a counters CSV; `include_commented` also counts `# DCGM_...` lines."""
    names = set()
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if not include_commented:
                continue
            stripped = stripped.lstrip("#").strip()
        field = stripped.split(",")[0].strip()
        if re.fullmatch(r"DCGM_(FI|EXP)_[A-Z0-9_]+", field):
            names.add(field)
    return names


def ksm_metrics() -> set[str]:
    return {
        line.strip()
        for line in KSM_METRICS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def exposition_names(metrics_text: str) -> set[str]:
    """Sample names in Prometheus text exposition (`_bucket`/`_sum`/`_count`/`_total` as written)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


# ------------------------------------------------------------------------------------------- Grafana

_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


def grafana_regex_escape(value: str) -> str:
    """Grafana's Prometheus `prometheusSpecialRegexEscape`: a value of a multi-value variable
    becomes a regex, written inside a PromQL string (so each escape is a doubled backslash)."""
    value = value.replace("\\", "\\\\\\\\")
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value)


def grafana_variable_value(
    values: Sequence[str], multi: bool, all_selected: bool, all_value: str | None
) -> str:
    """What Grafana writes for `$var` in a Prometheus query (datasource.ts interpolateQueryExpr)."""
    if all_selected and all_value is not None:
        return all_value
    if not multi:
        return values[0].replace("\\", "\\\\").replace("'", "\\\\'")
    escaped = [grafana_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def grafana_intervals(
    range_s: float, scrape_interval_s: float, max_data_points: int = 1000
) -> dict[str, str]:
    """Grafana's built-in interval variables for a time range (min interval = the scrape interval).

    `$__rate_interval` is max($__interval + scrape interval, 4 x scrape interval), as Grafana defines it.
    """
    interval = max(int(range_s // max_data_points), int(scrape_interval_s), 1)
    rate_interval = max(interval + int(scrape_interval_s), 4 * int(scrape_interval_s))
    return {
        "__interval": f"{interval}s",
        "__interval_ms": str(interval * 1000),
        "__rate_interval": f"{rate_interval}s",
        "__range": f"{int(range_s)}s",
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s) * 1000),
    }


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace `$name`, `${name}` and `[[name]]` like Grafana's template service. A name runs to the
    last word character, so `$__range_s` is not read as `$__range` + `_s`. An unknown variable is an
    error, so a typo in a dashboard cannot pass as an empty string."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"variable ${name} in {expr!r} has no value")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", replace, expr)
