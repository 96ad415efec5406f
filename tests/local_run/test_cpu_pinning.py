"""The side-by-side bench can give chat-api a core of its own, and a pinned child really is pinned."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from scripts.bench import cpu_layout
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
