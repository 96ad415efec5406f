"""`make down` stops exactly what `make up` recorded (the PID and the process's start time), and
`make up` starts again exactly the recorded parts that have stopped since."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.local_run import __main__ as local_run
from scripts.local_run.__main__ import (
    ModelChoice,
    Part,
    Settings,
    UsageError,
    down,
    load_model,
    load_state,
    save_state,
    up,
)
from scripts.local_run.process import free_port, pid_alive, start_identity

pytestmark = pytest.mark.unit


def settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path, model="tiny", vllm_port=1, api_port=2, ui_port=3, prom_port=4)


def free_settings(tmp_path: Path) -> Settings:
    ports = [free_port() for _ in range(4)]
    return Settings(tmp_path, "smollm2", ports[0], ports[1], ports[2], ports[3])


PARTS = ("vLLM", "chat-api", "UI")
MODEL = ModelChoice("smollm2", "/models/smollm2", "smollm2-135m-instruct", "Model: SmolLM2", "a demo model")


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_a_recorded_process_is_ours_until_it_exits() -> None:
    proc = sleeper()
    part = Part("x", proc.pid, "u", "r", "log", start_identity(proc.pid) or "")
    assert part.is_ours()
    proc.kill()
    proc.wait()
    assert not part.is_ours()


def test_a_part_that_died_but_was_not_reaped_is_not_running() -> None:
    proc = sleeper()
    part = Part("x", proc.pid, "u", "r", "log", start_identity(proc.pid) or "")
    proc.kill()
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child did not become a zombie"
            time.sleep(0.05)
        assert not part.is_ours(), "a zombie was taken for a running part"
    finally:
        proc.wait()


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
    monkeypatch.setenv("LOCAL_RUN_UI_PORT", "eighty")
    with pytest.raises(UsageError, match="LOCAL_RUN_UI_PORT='eighty' is not a TCP port"):
        Settings.from_env()


def test_a_mistyped_setting_is_refused_and_an_old_name_warned_about_with_the_name_to_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCAL_RUN_UI_PROT", "3001")
    with pytest.raises(
        UsageError, match="LOCAL_RUN_UI_PROT is no setting of the local run; did you mean LOCAL_RUN_UI_PORT"
    ):
        Settings.from_env()
    monkeypatch.delenv("LOCAL_RUN_UI_PROT")
    monkeypatch.setenv("LLAMA_UI_PORT", "3001")
    assert Settings.from_env().ui_port == 3000
    assert "LLAMA_UI_PORT is ignored: it is now called LOCAL_RUN_UI_PORT" in capsys.readouterr().err
    monkeypatch.setenv("LOCAL_RUN_UI_PORT", "3001")
    assert Settings.from_env().ui_port == 3001


def recorded(name: str, proc: subprocess.Popen[bytes]) -> Part:
    return Part(name, proc.pid, f"http://{name}", f"http://{name}/r", "log", start_identity(proc.pid) or "")


@pytest.fixture
def fake_starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`up` with each part's start replaced by a sleeper (recorded like a real part); no Prometheus."""
    started: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []

    def start_part(name: str, settings: Settings, model: ModelChoice, parts: list[Part]) -> None:
        procs.append(sleeper())
        started.append(name)
        parts.append(recorded(name, procs[-1]))
        save_state(settings, parts)

    monkeypatch.setattr(local_run, "start_part", start_part)
    monkeypatch.setattr(local_run.shutil, "which", lambda name: None)
    monkeypatch.setattr(local_run, "choose_model", lambda settings: MODEL)
    # The UI part is faked too: neither nginx nor ui/dist is needed.
    monkeypatch.setattr(local_run, "check_ui_prerequisites", lambda: None)
    yield started
    for proc in procs:
        proc.kill()
        proc.wait()


def test_up_restarts_a_part_that_crashed_and_keeps_the_running_ones(
    tmp_path: Path, fake_starts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    vllm, api, crashed_ui = sleeper(), sleeper(), sleeper()
    try:
        conf = free_settings(tmp_path)
        parts = [recorded("vLLM", vllm), recorded("chat-api", api), recorded("UI", crashed_ui)]
        save_state(conf, parts, MODEL)
        crashed_ui.kill()
        crashed_ui.wait()

        assert up(conf) == 0

        out = capsys.readouterr().out
        assert fake_starts == ["UI"], "only the part that stopped is started again"
        assert "already running" not in out.split("Starting")[0]
        assert f"UI (pid {crashed_ui.pid}) has stopped" in out
        state = {p.name: p for p in load_state(conf)}
        assert [p.name for p in load_state(conf)] == ["vLLM", "chat-api", "UI"]
        assert state["vLLM"].pid == vllm.pid and state["chat-api"].pid == api.pid
        assert state["UI"].pid != crashed_ui.pid and state["UI"].is_ours()
        assert vllm.poll() is None and api.poll() is None, "a running part was restarted"
        assert load_model(conf) == MODEL
    finally:
        for proc in (vllm, api, crashed_ui):
            proc.kill()
            proc.wait()


def test_up_starts_the_whole_stack_again_when_every_part_has_stopped(
    tmp_path: Path, fake_starts: list[str]
) -> None:
    conf = free_settings(tmp_path)
    gone = [sleeper() for _ in range(3)]
    save_state(conf, [recorded(n, p) for n, p in zip(PARTS, gone, strict=True)], MODEL)
    for proc in gone:
        proc.kill()
        proc.wait()
    assert up(conf) == 0
    assert fake_starts == ["vLLM", "chat-api", "UI"]
    assert all(p.is_ours() for p in load_state(conf))


def test_up_while_everything_runs_says_so_and_starts_nothing(
    tmp_path: Path, fake_starts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    procs = [sleeper() for _ in range(3)]
    try:
        conf = free_settings(tmp_path)
        save_state(conf, [recorded(n, p) for n, p in zip(PARTS, procs, strict=True)], MODEL)
        assert up(conf) == 0
        assert fake_starts == []
        assert "already running" in capsys.readouterr().out
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_the_default_model_is_smollm2_and_says_it_is_a_demo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LOCAL_RUN_MODEL", raising=False)
    assert Settings.from_env().model == "smollm2"
    monkeypatch.setattr(local_run, "ensure_local_model", lambda: tmp_path)
    choice = local_run.choose_model(free_settings(tmp_path))
    assert (choice.source, choice.served_name) == (str(tmp_path), "smollm2-135m-instruct")
    for text in (choice.about, choice.ui_note):
        assert "135M-parameter demo model" in text
        assert "make down && make up LLAMA_MODEL=Qwen/Qwen2.5-0.5B-Instruct" in text


def test_an_unknown_model_name_is_refused_with_the_choices(tmp_path: Path) -> None:
    conf = Settings(tmp_path, "smollm3", 1, 2, 3, 4)
    with pytest.raises(
        UsageError,
        match=r"LOCAL_RUN_MODEL='smollm3' \(make up LLAMA_MODEL=\.\.\.\) is neither 'smollm2', 'tiny'",
    ):
        local_run.choose_model(conf)


def test_up_without_nginx_says_how_to_install_it_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scripts.local_run import ui_nginx

    def missing() -> str:
        raise ui_nginx.NginxMissing("nginx is not installed; ... apt-get install nginx-light")

    started: list[str] = []
    monkeypatch.setattr(ui_nginx, "nginx_binary", missing)
    monkeypatch.setattr(local_run, "start_part", lambda name, *args: started.append(name))
    monkeypatch.setattr(local_run, "choose_model", lambda settings: MODEL)
    with pytest.raises(UsageError, match="apt-get install nginx-light"):
        up(free_settings(tmp_path))
    assert started == [] and load_state(free_settings(tmp_path)) == []
