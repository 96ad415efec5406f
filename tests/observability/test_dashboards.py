"""The Grafana dashboards as data: a `$datasource` variable and no hard-coded datasource, the
variables users filter by, every query valid PromQL, every metric name one that exists.

vLLM and chat-api names are checked against the real servers in test_live.py; here DCGM names
against the pinned exporter's counter list, kube-state-metrics names against its docs, and recorded
names against the rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability import support

pytestmark = pytest.mark.unit

EXPECTED_VARIABLES = {
    "gpu": {"datasource", "namespace", "node"},
    "model-inference": {"datasource", "namespace", "model"},
    "chat-api": {"datasource", "namespace", "model", "route"},
}
# What each dashboard must show (issue 6), as the metric families its queries must read.
EXPECTED_FAMILIES = {
    "gpu": {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_XID_ERRORS",
    },
    "model-inference": {
        "namespace_model_name:vllm_time_to_first_token_seconds:histogram_quantile5m",
        "namespace_model_name:vllm_inter_token_latency_seconds:histogram_quantile5m",
        "namespace_model_name:vllm_e2e_request_latency_seconds:histogram_quantile5m",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "vllm:request_success_total",
    },
    "chat-api": {
        "chat_api_requests_total",
        "namespace:chat_api_requests_5xx:ratio_rate5m",
        "namespace_route:chat_api_request_duration_seconds:histogram_quantile5m",
        "namespace_route:chat_api_time_to_first_token_seconds:histogram_quantile5m",
        "namespace_model_name:vllm_time_to_first_token_seconds:histogram_quantile5m",
        "chat_api_inflight_streams",
        "chat_api_rejections_total",
        "chat_api_upstream_errors_total",
        "chat_api_cancellations_total",
    },
}
EXAMPLE_VALUES = {
    "datasource": "prometheus",
    "namespace": "llama",
    "model": "llama-3\\\\.2-3b-instruct",
    "node": "gpu-1",
    "route": "/api/chat",
    **support.grafana_intervals(3600, 15),
}


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _recorded_names(tmp_path: Path) -> set[str]:
    _, groups = support.rendered_rules(tmp_path)
    return {rule["record"] for rule in support.recordings(groups)}


def _variable_queries(board: dict) -> list[str]:
    return [v["query"]["query"] for v in support.variables(board).values() if v["type"] == "query"]


def _label_values_selector(query: str) -> str:
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    assert match, f"variable query {query!r} is not label_values(selector, label)"
    return match.group(1)


def test_there_is_one_dashboard_per_subject() -> None:
    assert [p.stem for p in support.dashboard_files()] == ["chat-api", "gpu", "model-inference"]


@pytest.mark.parametrize("path", support.dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_reads_prometheus_only_through_the_datasource_variable(path: Path) -> None:
    board = support.load_dashboard(path)
    variables = support.variables(board)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for where, key, value in _walk(board):
        if key == "datasource":
            assert value == {"type": "prometheus", "uid": "${datasource}"}, f"{path.name}{where}: {value}"
        if key == "uid" and where:  # the dashboard's own uid (top level) is a stable link, not a datasource
            assert value == "${datasource}", f"{path.name}{where}: hard-coded uid {value!r}"


@pytest.mark.parametrize("path", support.dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_offers_namespace_and_model_filters_used_by_its_queries(path: Path) -> None:
    board = support.load_dashboard(path)
    variables = support.variables(board)
    assert set(variables) == EXPECTED_VARIABLES[path.stem]
    text = json.dumps([t.expr for t in support.targets(path)])
    for name, var in variables.items():
        if name == "datasource":
            continue
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*", name
        assert f"${name}" in text, f"{path.name}: variable ${name} filters no panel"


@pytest.mark.parametrize("path", support.dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_panels_have_unique_ids_titles_and_descriptions(path: Path) -> None:
    board = support.load_dashboard(path)
    panels = list(support.panels(board))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["title"] and panel.get("description"), panel
            assert panel["targets"], panel["title"]
    assert board["uid"] and board["title"].startswith("LLM platform / ")


@pytest.mark.parametrize("path", support.dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_shows_what_the_platform_promises(path: Path) -> None:
    used = set().union(*(support.metric_names(t.expr) for t in support.targets(path)))
    missing = EXPECTED_FAMILIES[path.stem] - used
    assert not missing, f"{path.name} does not show {sorted(missing)}"


def test_every_dashboard_query_and_variable_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, variables substituted as Grafana would, as a recording rule."""
    rules = []
    for index, target in enumerate(support.all_targets()):
        expr = support.substitute(target.expr, EXAMPLE_VALUES)
        rules.append({"record": f"panel_{index}", "expr": expr})
    for path in support.dashboard_files():
        for query in _variable_queries(support.load_dashboard(path)):
            selector = support.substitute(_label_values_selector(query), EXAMPLE_VALUES)
            rules.append({"record": f"variable_{len(rules)}", "expr": selector})
    rule_file = tmp_path / "panels.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = support.run_promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_metric_name_has_a_known_source(tmp_path: Path) -> None:
    """vLLM, chat-api, DCGM, kube-state-metrics or a recording rule of ours; nothing else."""
    recorded = _recorded_names(tmp_path)
    _, groups = support.rendered_rules(tmp_path)
    exprs = [t.expr for t in support.all_targets()] + [r["expr"] for g in groups for r in g["rules"]]
    unknown = set()
    for expr in exprs:
        for name in support.metric_names(expr):
            known = (
                name in recorded
                or name == "up"
                or name.startswith(("vllm:", "chat_api_", "DCGM_FI_", "kube_"))
            )
            if not known:
                unknown.add(name)
    assert not unknown, f"metric names from no known source: {sorted(unknown)}"


def test_recorded_names_the_dashboards_use_are_defined_by_the_rules(tmp_path: Path) -> None:
    recorded = _recorded_names(tmp_path)
    used = {
        n
        for t in support.all_targets()
        for n in support.metric_names(t.expr)
        if ":" in n and "vllm:" not in n
    }
    assert used, "no dashboard uses a recording rule"
    assert used <= recorded, f"undefined recorded series: {sorted(used - recorded)}"


def test_dcgm_names_exist_in_the_pinned_exporter_and_in_the_charts_counters(tmp_path: Path) -> None:
    upstream_all = support.dcgm_fields(support.DCGM_COUNTERS_UPSTREAM, include_commented=True)
    chart_counters = support.dcgm_fields(
        support.GPU_CHART / "files" / "counters.csv", include_commented=False
    )
    profiling = support.dcgm_fields(
        support.GPU_CHART / "files" / "counters-profiling.csv", include_commented=False
    )
    assert len(upstream_all) > 40, "the upstream counter list looks truncated"
    assert chart_counters | profiling <= upstream_all, sorted((chart_counters | profiling) - upstream_all)
    _, groups = support.rendered_rules(tmp_path)
    exprs = [t.expr for t in support.all_targets()] + [r["expr"] for g in groups for r in g["rules"]]
    used = {n for e in exprs for n in support.metric_names(e) if n.startswith("DCGM_")}
    assert used, "no DCGM metric used"
    assert used <= chart_counters, (
        f"used but not published by the chart's counters.csv: {sorted(used - chart_counters)}"
    )


def test_kube_state_metrics_names_exist(tmp_path: Path) -> None:
    _, groups = support.rendered_rules(tmp_path)
    exprs = [t.expr for t in support.all_targets()] + [r["expr"] for g in groups for r in g["rules"]]
    used = {n for e in exprs for n in support.metric_names(e) if n.startswith("kube_")}
    assert used and used <= support.ksm_metrics(), sorted(used - support.ksm_metrics())


def test_gpu_dashboard_reads_only_gpu_sources() -> None:
    """Everything on the GPU dashboard needs a GPU node; nothing else is hidden there."""
    for target in support.targets(support.DASHBOARDS_DIR / "gpu.json"):
        assert all(n.startswith(("DCGM_", "kube_")) for n in support.metric_names(target.expr)), target


# ------------------------------------------------------------------- the helpers themselves


def test_metric_names_skip_functions_labels_strings_and_durations() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, model_name) (rate(vllm:e2e_request_latency_seconds_bucket"
        '{namespace=~"$namespace", model_name=~"a|b"}[$__rate_interval]))) / on() group_left '
        'sum(up{job="x"} offset 5m) or vector(0) * 1024'
    )
    assert support.metric_names(expr) == {"vllm:e2e_request_latency_seconds_bucket", "up"}


def test_grafana_substitution_escapes_multi_value_variables_like_grafana() -> None:
    assert support.grafana_variable_value(["llama-3.2"], multi=True, all_selected=False, all_value=".*") == (
        "llama-3\\\\.2"
    )
    assert support.grafana_variable_value(["a", "b.c"], multi=True, all_selected=False, all_value=None) == (
        "(a|b\\\\.c)"
    )
    assert support.grafana_variable_value(["x"], multi=True, all_selected=True, all_value=".*") == ".*"
    assert (
        support.substitute(
            "rate(x[$__rate_interval]) $model ${model} [[model]]",
            {
                "__rate_interval": "4s",
                "model": "m",
            },
        )
        == "rate(x[4s]) m m m"
    )
    with pytest.raises(KeyError):
        support.substitute("$nope", {})
