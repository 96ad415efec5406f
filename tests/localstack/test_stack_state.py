"""`make down` stops exactly what `make up` recorded: the PID and the process's start time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.localstack.__main__ import Part, Settings, UsageError, down, load_state, save_state
from scripts.localstack.process import pid_alive, start_identity

pytestmark = pytest.mark.unit


def settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path, model="tiny", vllm_port=1, api_port=2, ui_port=3, prom_port=4)


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_a_recorded_process_is_ours_until_it_exits() -> None:
    proc = sleeper()
    part = Part("x", proc.pid, "u", "r", "log", start_identity(proc.pid) or "")
    assert part.is_ours()
    proc.kill()
    proc.wait()
    assert not part.is_ours()


def test_a_process_that_reuses_the_pid_is_not_ours() -> None:
    proc = sleeper()
    try:
        recorded = Part("x", proc.pid, "u", "r", "log", started="12345")  # another start time
        assert not recorded.is_ours()
    finally:
        proc.kill()
        proc.wait()


def test_down_stops_the_recorded_processes_and_leaves_others_alone(tmp_path: Path) -> None:
    ours, stranger = sleeper(), sleeper()
    try:
        conf = settings(tmp_path)
        save_state(conf, [Part("ours", ours.pid, "u", "r", "log", start_identity(ours.pid) or "")])
        assert down(conf) == 0
        ours.wait(timeout=20)
        assert not pid_alive(ours.pid)
        assert stranger.poll() is None, "make down stopped a process it did not start"
        assert load_state(conf) == []
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


def test_a_port_that_is_not_a_number_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_UI_PORT", "eighty")
    with pytest.raises(UsageError, match="LLAMA_UI_PORT='eighty' is not a TCP port"):
        Settings.from_env()
