"""Cold and warm `make up` of two revisions, side by side in one run (issue 17's start-up budget).

    .venv/bin/python -m scripts.bench_make_up [--baseline 18c4e45] [--rounds 1] [--out build/bench-make-up]

Each arm is a clean copy of its revision (the files `git clone` gives; this working tree's
uncommitted edits included for the candidate), with the repository's venvs linked in, so "cold"
means what a newcomer waits for after the venvs: npm packages, the UI build, the model (download,
preparation) and the stack's start. "Warm" is `make up` again after `make down`: everything
cached, the stack stopped. The arms alternate within each round (the baseline first in odd rounds)
so neither always runs on the busier minute. Besides wall time it reports the CPU seconds of
everything `make up` ran (its children's user+sys), which a shared machine's load inflates far
less than wall time, plus the CPU the started servers (vLLM, chat-api, UI, Prometheus) had used by
the time `make up` returned (from /proc, as they outlive `make`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.local_run.process import REPO_ROOT, free_port

VENVS = (".venv", ".venv-vllm")


def export(revision: str | None, dest: Path) -> Path:
    """A clean copy: `git archive` of a revision, or this working tree's tracked and unignored files."""
    dest.mkdir(parents=True)
    if revision is not None:
        archive = subprocess.run(["git", "archive", revision], cwd=REPO_ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    else:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        ).stdout.decode()
        for rel in filter(None, listed.split("\0")):
            if (REPO_ROOT / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / rel, dest / rel)
    for venv in VENVS:
        (dest / venv).symlink_to(REPO_ROOT / venv)
        # Older than nothing the copy holds, so make does not reinstall into the shared venv.
        (REPO_ROOT / venv / ".installed").touch()
    return dest


def servers_cpu_s(repo: Path) -> float:
    """user+sys seconds the stack's processes (and their reaped children) have used so far."""
    state = repo / ".run" / "stack.json"
    if not state.is_file():
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for part in json.loads(state.read_text()).get("parts", []):
        try:
            fields = Path(f"/proc/{part['pid']}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, KeyError, IndexError):
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def timed_make(repo: Path, target: str, env: dict[str, str], log: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n===== make {target} =====\n")
        out.flush()
        result = subprocess.run(
            ["make", target], cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"make {target} failed in {repo} (exit {result.returncode}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if target == "up":
        cpu += servers_cpu_s(repo)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def run_arm(
    name: str, revision: str | None, work: Path, env: dict[str, str], logs: Path
) -> dict[str, object]:
    repo = export(revision, work / name)
    log = logs / f"{name}.log"
    try:
        cold = timed_make(repo, "up", env, log)
        timed_make(repo, "down", env, log)
        warm = timed_make(repo, "up", env, log)
    finally:
        subprocess.run(["make", "down"], cwd=repo, env=env, capture_output=True, check=False)
    model_bytes = (
        sum(f.stat().st_size for f in (repo / ".cache").rglob("*") if f.is_file())
        if (repo / ".cache").exists()
        else 0
    )
    shutil.rmtree(repo, ignore_errors=True)
    return {"cold": cold, "warm": warm, "cache_mib": round(model_bytes / 2**20)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", default="18c4e45", help="revision to compare with (default: before issue 17)"
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench-make-up")
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print("error: npm is not installed; `make up` builds the UI with it", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "LLAMA_", "LOCAL_RUN_"))}
    for part in ("VLLM_PORT", "API_PORT", "UI_PORT", "PROM_PORT"):
        # Revisions before the local run's own prefix read LLAMA_*; later ones LOCAL_RUN_* (and warn).
        env[f"LOCAL_RUN_{part}"] = env[f"LLAMA_{part}"] = str(free_port())
    results: dict[str, list[dict[str, object]]] = {"baseline": [], "candidate": []}
    with tempfile.TemporaryDirectory(prefix="bench-make-up-") as tmp:
        for round_no in range(args.rounds):
            order = [("baseline", args.baseline), ("candidate", None)]
            if round_no % 2:
                order.reverse()
            for name, revision in order:
                print(f"round {round_no + 1}: {name} ({revision or 'working tree'}) ...", flush=True)
                result = run_arm(name, revision, Path(tmp) / f"r{round_no}", env, args.out)
                print(f"  {json.dumps(result)}", flush=True)
                results[name].append(result)
    load = os.getloadavg()
    report: dict[str, object] = {"baseline": args.baseline, "rounds": args.rounds, "loadavg_at_end": load}
    for phase in ("cold", "warm"):
        for key in ("wall_s", "cpu_s"):
            base = statistics.median(r[phase][key] for r in results["baseline"])  # type: ignore[index]
            cand = statistics.median(r[phase][key] for r in results["candidate"])  # type: ignore[index]
            report[f"{phase}_{key}"] = {"baseline": base, "candidate": cand, "delta": round(cand - base, 1)}
    report["runs"] = results
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for phase in ("cold", "warm"):
        wall: dict[str, float] = report[f"{phase}_wall_s"]  # type: ignore[assignment]
        cpu: dict[str, float] = report[f"{phase}_cpu_s"]  # type: ignore[assignment]
        print(
            f"{phase:>5} make up: wall {wall['baseline']:.0f} -> {wall['candidate']:.0f} s "
            f"({wall['delta']:+.0f} s); "
            f"CPU {cpu['baseline']:.0f} -> {cpu['candidate']:.0f} s ({cpu['delta']:+.0f} s)"
        )
    print(f"load average at the end: {load[0]:.1f}; report: {args.out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
