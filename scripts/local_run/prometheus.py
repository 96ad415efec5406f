"""Real Prometheus (the Debian `prometheus` binary) on loopback, scraping the local vLLM and chat-api.

It loads the platform's own recording rules and alerts (charts/platform/charts/
kube-prometheus-dashboards/rules/*.yaml, placeholders filled with the chart's defaults), so `make up`
and the observability tests evaluate exactly what the cluster's Prometheus evaluates. Local
processes have no Kubernetes labels; the scrape config adds `namespace` and `pod` as static labels so
the dashboards' `$namespace` filters and `by (pod)` groupings work here too.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from scripts.local_run.process import REPO_ROOT, ManagedProcess, http_ok

DASHBOARDS_CHART = REPO_ROOT / "charts" / "platform" / "charts" / "kube-prometheus-dashboards"
RULES_DIR = DASHBOARDS_CHART / "rules"
# The namespace label local targets get: what `$namespace` selects on the dashboards.
LOCAL_NAMESPACE = "local"
READY_TIMEOUT_S = 60.0


def prometheus_binary() -> str:
    """Path of the `prometheus` binary; FileNotFoundError says how to install it."""
    found = shutil.which("prometheus")
    if found is None:
        raise FileNotFoundError(
            "the `prometheus` binary is not installed; on Debian/Ubuntu: apt-get install prometheus"
        )
    return found


def chart_placeholders(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The rule files' placeholders filled the way the chart fills them from its default values."""
    values = yaml.safe_load((DASHBOARDS_CHART / "values.yaml").read_text())
    filled = {
        "%RUNBOOK_URL%": values["rules"]["runbookBaseUrl"],
        "%VLLM_JOB%": values["rules"]["vllmJob"],
    }
    filled.update(overrides or {})
    return filled


def render_rule_files(
    out_dir: Path, include_gpu: bool = True, placeholders: Mapping[str, str] | None = None
) -> list[Path]:
    """Write the chart's rule files, placeholders filled, into `out_dir`; returns their paths.

    `include_gpu=False` leaves out gpu.yaml (DCGM and kube-state-metrics series never exist locally).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    filled = chart_placeholders(placeholders)
    written = []
    for source in sorted(RULES_DIR.glob("*.yaml")):
        if source.stem == "gpu" and not include_gpu:
            continue
        text = source.read_text()
        for placeholder, value in filled.items():
            text = text.replace(placeholder, value)
        target = out_dir / source.name
        target.write_text(text)
        written.append(target)
    return written


def scrape_config(
    vllm_targets: Sequence[str],
    chat_api_targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    namespace: str = LOCAL_NAMESPACE,
    scrape_interval: str = "15s",
    evaluation_interval: str | None = None,
) -> dict:
    """A Prometheus config that scrapes the given host:port targets.

    Each target gets `namespace` and a `pod` (the job name, with an index when there are several)
    as static labels, standing in for what Kubernetes service discovery adds in the cluster.
    """

    def job(name: str, targets: Sequence[str]) -> dict:
        return {
            "job_name": name,
            "metrics_path": "/metrics",
            "static_configs": [
                {"targets": [target], "labels": {"namespace": namespace, "pod": f"{name}-{index}"}}
                for index, target in enumerate(targets)
            ],
        }

    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval if _seconds(scrape_interval) < 10 else "10s",
            "evaluation_interval": evaluation_interval or scrape_interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [job("vllm", vllm_targets), job("chat-api", chat_api_targets)],
    }


def write_scrape_config(path: Path, **kwargs) -> Path:
    """Write `scrape_config(**kwargs)` to `path` as YAML; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(scrape_config(**kwargs), sort_keys=False))
    return path


def prometheus_argv(config_path: Path, port: int, data_dir: Path, retention: str = "1d") -> list[str]:
    return [
        prometheus_binary(),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]


def start_prometheus(
    config_path: Path,
    port: int,
    data_dir: Path,
    log_path: Path,
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
    on_wait: Callable[[float], None] | None = None,
) -> ManagedProcess:
    """Start Prometheus on 127.0.0.1:`port` with `config_path`; by default wait for /-/ready.

    On failure the process is stopped and `StartupError` carries the tail of its log.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        name=f"prometheus:{port}",
        argv=prometheus_argv(Path(config_path), port, Path(data_dir)),
        log_path=log_path,
    ).start()
    if wait:
        proc.wait_ready(
            http_ok(f"http://127.0.0.1:{port}/-/ready"),
            timeout=timeout,
            on_wait=on_wait,
            stop_on_failure=True,
        )
    return proc


def local_prometheus(
    run_dir: Path, port: int, log_path: Path, vllm_target: str, chat_api_target: str
) -> ManagedProcess:
    """An unstarted Prometheus for `make up`: config, rules and data under `run_dir`."""
    rules = render_rule_files(run_dir / "rules", include_gpu=False)
    config = write_scrape_config(
        run_dir / "prometheus.yml",
        vllm_targets=[vllm_target],
        chat_api_targets=[chat_api_target],
        rule_files=rules,
        scrape_interval="5s",
    )
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name=f"prometheus:{port}",
        argv=prometheus_argv(config, port, run_dir / "data"),
        log_path=log_path,
    )


def start_local_prometheus(
    run_dir: Path,
    port: int,
    log_path: Path,
    vllm_target: str,
    chat_api_target: str,
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
) -> ManagedProcess:
    """`make up`'s Prometheus: scrapes vLLM and chat-api every 5 s and evaluates the platform's rules."""
    proc = local_prometheus(run_dir, port, log_path, vllm_target, chat_api_target).start()
    if wait:
        proc.wait_ready(http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=timeout, stop_on_failure=True)
    return proc


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    raise ValueError(f"duration {duration!r} has no unit; write it like 15s or 1m")
