"""checkov's Kubernetes policies on the rendered manifests, with skips read from one file.

checkov's `helm` framework needs the helm binary and silently checks nothing without it, so the
manifests rendered by Helm's engine in-process are written out and scanned with
`--framework kubernetes`. `--skip-download` keeps it offline. Every failed check must be listed in
checkov-skips.yaml with the reason it does not apply; a skip that matches nothing is stale.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts import chart

CHECKOV = chart.REPO / ".venv-checkov" / "bin" / "checkov"
SKIPS_FILE = Path(__file__).with_name("checkov-skips.yaml")


@dataclass(frozen=True)
class Skip:
    """Why a check does not apply, and to which resources (`Kind.namespace.name` globs)."""

    check_id: str
    reason: str
    resources: tuple[str, ...] = ("*",)

    def covers(self, resource: str) -> bool:
        return any(fnmatch.fnmatchcase(resource, pattern) for pattern in self.resources)


@dataclass
class Report:
    passed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[dict[str, Any], Skip]] = field(default_factory=list)
    parsing_errors: int = 0
    resource_count: int = 0


def load_skips(path: Path = SKIPS_FILE) -> dict[str, Skip]:
    """`CHECK_ID: reason` or `CHECK_ID: {reason: ..., resources: [...]}` entries."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    skips: dict[str, Skip] = {}
    for check_id, entry in raw.items():
        if isinstance(entry, str):
            skips[check_id] = Skip(check_id, entry.strip())
        else:
            resources = tuple(entry.get("resources") or ("*",))
            skips[check_id] = Skip(check_id, str(entry.get("reason") or "").strip(), resources)
    return skips


def write_manifests(cases: dict[str, list[dict[str, Any]]], directory: Path) -> dict[str, list[str]]:
    """Each distinct manifest once, in a file named by its digest; returns digest -> the cases that
    render it. Most objects are the same in every case, so this scans a fraction of the total."""
    origins: dict[str, list[str]] = {}
    for name, manifests in cases.items():
        for manifest in manifests:
            digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
            if digest not in origins:
                (directory / f"{digest}.yaml").write_text(
                    yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8"
                )
            origins.setdefault(digest, []).append(name)
    return origins


def start_checkov(directory: Path) -> subprocess.Popen[str]:
    """Start checkov on `directory` in the background (it is a separate process: it runs on the
    other core while the rest of the tier goes on)."""
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    command = [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--skip-download"]
    return subprocess.Popen(
        [*command, "--compact", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish_checkov(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    # checkov exits 1 when a check fails; the JSON is what tells.
    if not stdout.strip().startswith(("{", "[")):
        raise RuntimeError(f"checkov produced no report (exit {proc.returncode}): {stderr[-2000:]}")
    data = json.loads(stdout)
    return data[0] if isinstance(data, list) else data


def classify(data: dict[str, Any], skips: dict[str, Skip]) -> Report:
    results = data.get("results", {})
    summary = data.get("summary", {})
    report = Report(
        passed=len(results.get("passed_checks", [])),
        parsing_errors=int(summary.get("parsing_errors", 0)),
        resource_count=int(summary.get("resource_count", 0)),
    )
    for finding in results.get("failed_checks", []):
        skip = skips.get(finding["check_id"])
        if skip and skip.covers(finding["resource"]):
            report.skipped.append((finding, skip))
        else:
            report.failed.append(finding)
    return report


class Scan:
    """A checkov run over every case's distinct manifests, started now and read later."""

    def __init__(self, cases: dict[str, list[dict[str, Any]]], workdir: Path) -> None:
        self.origins = write_manifests(cases, workdir)
        self.proc = start_checkov(workdir)

    def report(self) -> Report:
        data = finish_checkov(self.proc)
        for finding in data.get("results", {}).get("failed_checks", []):
            finding["cases"] = self.origins.get(Path(finding["file_path"]).stem, [])
        return classify(data, load_skips())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def scan(cases: dict[str, list[dict[str, Any]]], workdir: Path) -> Report:
    """Render-to-report in one call (for scripts); the tests start the scan early instead."""
    return Scan(cases, workdir).report()
