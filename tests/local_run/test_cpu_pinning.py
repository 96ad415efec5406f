"""The side-by-side bench can give chat-api a core of its own, and a pinned child really is pinned."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.bench import cpu_layout, process_cpu_s, tree_usage
from scripts.local_run.process import ManagedProcess

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only"),
]


def test_split_gives_chat_api_the_last_core_and_the_rest_to_vllm_and_the_client(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cpu_layout("split") == {
        "chat-api": frozenset({3}),
        "vllm": frozenset({0, 1, 2}),
        "bench": frozenset({0, 1, 2}),
    }


def test_engine_alone_gives_vllm_its_cores_to_itself_and_puts_the_client_beside_chat_api(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cpu_layout("engine-alone") == {
        "chat-api": frozenset({3}),
        "vllm": frozenset({0, 1, 2}),
        "bench": frozenset({3}),
    }


def test_a_trees_cpu_includes_its_grandchildren(tmp_path: Path) -> None:
    """vLLM's engine core is a child of its API server: the per-arm CPU must count it."""
    ready = tmp_path / "burned"
    burner = (
        "import time, pathlib\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.4: pass\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)"
    )
    middle = (
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {burner!r}])\ntime.sleep(60)"
    )
    top = subprocess.Popen([sys.executable, "-c", middle])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        usage = tree_usage(top.pid)
        assert usage is not None
        cpu, preempted = usage
        assert cpu >= 0.4 > (process_cpu_s(top.pid) or 0.0)
        assert preempted >= 0
    finally:
        for child in Path(f"/proc/{top.pid}/task/{top.pid}/children").read_text().split():
            os.kill(int(child), 9)
        top.kill()
        top.wait()


def test_shared_or_a_single_core_pins_nothing(monkeypatch) -> None:
    assert cpu_layout("shared") is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert cpu_layout("split") is None


def test_a_managed_process_runs_on_the_cpus_it_was_given(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    out = tmp_path / "affinity.txt"
    code = f"import os; open({str(out)!r}, 'w').write(repr(sorted(os.sched_getaffinity(0))))"
    proc = ManagedProcess(
        name="pinned", argv=[sys.executable, "-c", code], log_path=tmp_path / "log", cpus=frozenset({cpu})
    ).start()
    assert proc.popen is not None and proc.popen.wait(timeout=30) == 0
    assert out.read_text() == repr([cpu])
