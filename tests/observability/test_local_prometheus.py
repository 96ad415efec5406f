"""scripts/local_run/prometheus.py: the scrape config and rules `make up` and the live test use."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
import yaml

from scripts.local_run import prometheus
from scripts.local_run.process import free_port
from tests.observability import support


@pytest.mark.unit
def test_scrape_config_labels_local_targets_like_kubernetes_would(tmp_path: Path) -> None:
    rules = prometheus.render_rule_files(tmp_path / "rules", include_gpu=False)
    path = prometheus.write_scrape_config(
        tmp_path / "prometheus.yml",
        vllm_targets=["127.0.0.1:8000"],
        chat_api_targets=["127.0.0.1:8080", "127.0.0.1:8081"],
        rule_files=rules,
        namespace="llama",
        scrape_interval="1s",
    )
    config = yaml.safe_load(path.read_text())
    assert config["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert jobs["vllm"] == [
        {"targets": ["127.0.0.1:8000"], "labels": {"namespace": "llama", "pod": "vllm-0"}}
    ]
    assert [c["labels"]["pod"] for c in jobs["chat-api"]] == ["chat-api-0", "chat-api-1"]
    assert config["rule_files"] == [str(p) for p in rules]
    result = support.run_promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.unit
def test_rule_files_are_filled_with_the_charts_default_values(tmp_path: Path) -> None:
    values = yaml.safe_load((prometheus.DASHBOARDS_CHART / "values.yaml").read_text())["rules"]
    (vllm,) = [p for p in prometheus.render_rule_files(tmp_path) if p.stem == "vllm"]
    text = vllm.read_text()
    assert f"{values['runbookBaseUrl']}#vllmdown" in text
    assert f'up{{job=~"{values["vllmJob"]}"}}' in text


@pytest.mark.unit
def test_a_duration_without_unit_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="write it like 15s"):
        prometheus.scrape_config(["a:1"], ["b:2"], scrape_interval="15")


@pytest.mark.integration
def test_make_ups_prometheus_starts_loads_the_rules_and_stops(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("the `prometheus` binary is not installed (Debian/Ubuntu: apt-get install prometheus)")
    port = free_port()
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: the targets are simply down
    proc = prometheus.start_local_prometheus(tmp_path, port, tmp_path / "prometheus.log", dead, dead)
    try:
        groups = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert {g["name"] for g in groups} == {
            "vllm.rules",
            "vllm.alerts",
            "chat-api.rules",
            "chat-api.alerts",
        }
        labels: list[dict] = []
        deadline = time.monotonic() + 15  # discovery syncs a moment after /-/ready
        while not labels and time.monotonic() < deadline:
            time.sleep(0.2)
            targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=10).json()["data"]
            labels = [t["labels"] for t in targets["activeTargets"]]
        assert {(lbl["job"], lbl["namespace"], lbl["pod"]) for lbl in labels} == {
            ("vllm", "local", "vllm-0"),
            ("chat-api", "local", "chat-api-0"),
        }
    finally:
        proc.stop()
    assert not proc.alive()
