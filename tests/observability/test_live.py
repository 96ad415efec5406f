"""Dashboards and rules against the real thing: a real Prometheus (Debian package) on loopback scrapes
real vLLM CPU and real chat-api every second while a short load runs (one stream cancelled, one
request rejected). Then every non-GPU panel query, with its variables substituted the way Grafana
substitutes them, and every recording rule must return data through Prometheus' HTTP API.

GPU panels and rules (DCGM exporter, kube-state-metrics) need a GPU node; their names are checked
against the pinned exporter's counter list in test_dashboards.py instead.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.local_run.process import free_port
from scripts.local_run.prometheus import render_rule_files, start_prometheus, write_scrape_config
from tests.fixtures.stack import LOG_DIR, ChatApiServer, VllmServer
from tests.observability import support

pytestmark = pytest.mark.integration

NAMESPACE = "llama-live"  # what the scrape config's static labels say; `$namespace` selects it
SCRAPE_INTERVAL_S = 1
GPU_DASHBOARD = "gpu"


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {response.status_code} {body}"
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: str) -> list[dict]:
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def series_with_values(self, expr: str, start: float, end: float, step: str) -> list[dict]:
        """The series of a range query that have at least one real (non-NaN) value."""
        return [
            s
            for s in self.query_range(expr, start, end, step)
            if any(not math.isnan(float(v)) for _, v in s["values"])
        ]


@dataclass
class LoadWindow:
    start: float
    end: float

    @property
    def range_s(self) -> float:
        return self.end - self.start


@pytest.fixture(scope="module")
def prometheus(
    vllm_server: VllmServer, chat_api: ChatApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    if shutil.which("prometheus") is None:
        pytest.skip("the `prometheus` binary is not installed (Debian/Ubuntu: apt-get install prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    rules = render_rule_files(work / "rules", include_gpu=False)
    config = write_scrape_config(
        work / "prometheus.yml",
        vllm_targets=[f"127.0.0.1:{vllm_server.port}"],
        chat_api_targets=[f"127.0.0.1:{chat_api.port}"],
        rule_files=rules,
        namespace=NAMESPACE,
        scrape_interval=f"{SCRAPE_INTERVAL_S}s",
    )
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    proc = start_prometheus(config, port, work / "data", LOG_DIR / f"prometheus-{port}.log")
    try:
        yield Prometheus(f"http://127.0.0.1:{port}")
    finally:
        proc.stop()


def _wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:.0f} s")
        time.sleep(0.5)


def _stream(client: httpx.Client, url: str, body: dict, cancel_after_first_delta: bool = False) -> bool:
    """POST a streaming request; read it to the end, or close it after the first content."""
    with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if cancel_after_first_delta and (line.startswith("event: delta") or '"content"' in line):
                return True  # leaving the block closes the connection: a Stop
    return False


@pytest.fixture(scope="module")
def load(prometheus: Prometheus, vllm_server: VllmServer, chat_api: ChatApiServer) -> LoadWindow:
    """A short, mixed load; returns the time window the queries look at."""
    _wait_for(
        lambda: len(prometheus.api("query", query='up{job=~"vllm|chat-api"} == 1')["result"]) == 2,
        30,
        "both targets up in Prometheus",
    )
    start = time.time() - 2 * SCRAPE_INTERVAL_S
    model = vllm_server.served_name
    api = chat_api.base_url
    messages = [{"role": "user", "content": "Tell me about GPUs."}]
    cancelled_before = chat_api.metric_value("chat_api_cancellations_total")
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            _stream(client, f"{api}/api/chat", {"messages": messages, "max_tokens": 24})
            _stream(
                client,
                f"{api}/v1/chat/completions",
                {"model": model, "messages": messages, "max_tokens": 24, "stream": True},
            )
            reply = client.post(
                f"{api}/v1/chat/completions", json={"model": model, "messages": messages, "max_tokens": 16}
            )
            assert reply.status_code == 200, reply.text
        # A request chat-api refuses before streaming (4xx, rejection reason `validation`).
        bad = client.post(f"{api}/v1/chat/completions", json={"model": model, "messages": []})
        assert 400 <= bad.status_code < 500, bad.text
        # A Stop: the client closes the stream after the first token. (That vLLM then aborts the
        # request is tests/integration's subject; vLLM 0.32 does not count client aborts by reason.)
        assert _stream(
            client,
            f"{api}/api/chat",
            {"messages": messages, "max_tokens": 1500},
            cancel_after_first_delta=True,
        ), "the stream ended before its first token"
    chat_api.wait_metric("chat_api_cancellations_total", lambda v: v > cancelled_before, timeout=10)
    vllm_server.wait_metric("vllm:num_requests_running", lambda v: v == 0, timeout=10)
    # Let Prometheus scrape the final counters and evaluate the rules on them a few times.
    time.sleep(6 * SCRAPE_INTERVAL_S)
    return LoadWindow(start=start, end=time.time())


def _grafana_values(prometheus: Prometheus, board: dict, window: LoadWindow) -> dict[str, str]:
    """Each variable's value as Grafana would substitute it: the scraped namespace and model
    selected (found through the variable's own query), other variables on All."""
    values = support.grafana_intervals(window.range_s, SCRAPE_INTERVAL_S)
    chosen = {"namespace": [NAMESPACE]}
    for name, var in support.variables(board).items():
        if name == "datasource":
            values[name] = "prometheus"
            continue
        options = _label_values(prometheus, var["query"]["query"], values)
        if name == "model":
            chosen["model"] = options  # the only model served here
        wanted = chosen.get(name)
        if wanted:
            assert set(wanted) <= set(options), f"${name} offers {options}, not {wanted}"
        values[name] = support.grafana_variable_value(
            wanted or options, multi=var["multi"], all_selected=not wanted, all_value=var.get("allValue")
        )
    return values


def _label_values(prometheus: Prometheus, query: str, values: dict[str, str]) -> list[str]:
    inner = query.strip()[len("label_values(") : -1]
    selector, label = (part.strip() for part in inner.rsplit(",", 1))
    selector = support.substitute(selector, {**values, "namespace": values.get("namespace", ".*")})
    return prometheus.api(f"label/{label}/values", **{"match[]": selector})


NON_GPU_TARGETS = [t for t in support.all_targets() if t.dashboard != GPU_DASHBOARD]


def test_vllm_and_chat_api_metric_names_used_exist_on_the_real_servers(
    vllm_server: VllmServer, chat_api: ChatApiServer, load: LoadWindow, tmp_path: Path
) -> None:
    """After the load: labelled families appear on /metrics once a request has used them."""
    _, groups = support.rendered_rules(tmp_path)
    exprs = [t.expr for t in support.all_targets()] + [r["expr"] for g in groups for r in g["rules"]]
    for path in support.dashboard_files():
        exprs += [
            v["query"]["query"].replace("label_values(", "(", 1).rsplit(",", 1)[0] + ")"
            for v in support.variables(support.load_dashboard(path)).values()
            if v["type"] == "query"
        ]
    used = {n for e in exprs for n in support.metric_names(e)}
    vllm_names = support.exposition_names(vllm_server.metrics_text())
    chat_names = support.exposition_names(chat_api.metrics_text())
    used_vllm = {n for n in used if n.startswith("vllm:")}
    used_chat = {n for n in used if n.startswith("chat_api_")}
    assert used_vllm and used_chat
    assert used_vllm <= vllm_names, f"not on vLLM's /metrics: {sorted(used_vllm - vllm_names)}"
    assert used_chat <= chat_names, f"not on chat-api's /metrics: {sorted(used_chat - chat_names)}"


def test_dashboard_variables_offer_the_scraped_namespace_and_model(
    prometheus: Prometheus, load: LoadWindow, vllm_server: VllmServer
) -> None:
    for path in support.dashboard_files():
        if path.stem == GPU_DASHBOARD:
            continue
        variables = support.variables(support.load_dashboard(path))
        all_values = {"namespace": ".*", **support.grafana_intervals(load.range_s, SCRAPE_INTERVAL_S)}
        assert NAMESPACE in _label_values(prometheus, variables["namespace"]["query"]["query"], all_values)
        assert _label_values(prometheus, variables["model"]["query"]["query"], all_values) == [
            vllm_server.served_name
        ]


@pytest.mark.parametrize("target", NON_GPU_TARGETS, ids=lambda t: f"{t.dashboard}:{t.panel}:{t.ref_id}")
def test_every_non_gpu_panel_returns_data_with_grafana_variables(
    prometheus: Prometheus, load: LoadWindow, target: support.Target
) -> None:
    board = support.load_dashboard(support.DASHBOARDS_DIR / f"{target.dashboard}.json")
    values = _grafana_values(prometheus, board, load)
    expr = support.substitute(target.expr, values)
    series = prometheus.series_with_values(expr, load.start, load.end, values["__interval"])
    assert series, f"No data for {target.dashboard} / {target.panel} ({target.ref_id}): {expr}"


def test_every_recording_rule_returns_data(prometheus: Prometheus, load: LoadWindow, tmp_path: Path) -> None:
    _, groups = support.rendered_rules(tmp_path, include_gpu=False)
    empty = []
    for rule in support.recordings(groups):
        selector = rule["record"] + (
            "{" + ",".join(f'{k}="{v}"' for k, v in rule.get("labels", {}).items()) + "}"
            if "labels" in rule
            else ""
        )
        if not prometheus.series_with_values(selector, load.start, load.end, f"{SCRAPE_INTERVAL_S}s"):
            empty.append(selector)
    assert not empty, f"recording rules without data: {empty}"


def test_every_rule_evaluates_cleanly_and_the_down_and_5xx_alerts_stay_quiet(
    prometheus: Prometheus, load: LoadWindow
) -> None:
    groups = prometheus.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert rules, "Prometheus loaded no rules"
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken, f"rules failing in Prometheus: {json.dumps(broken)}"
    states = {r["name"]: r["state"] for r in rules if r["type"] == "alerting"}
    # VLLMDown quiet proves its job selector matches the vLLM target (absent() would fire otherwise).
    assert states["VLLMDown"] == "inactive"
    assert states["ChatAPIHigh5xxRatio"] == "inactive"
