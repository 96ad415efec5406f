"""`make up` / `make down` / `make status` / `make logs`: the platform's application layer on one machine.

    python -m scripts.localstack up | down | status | logs [--follow]

Starts vLLM (CPU build), chat-api, the UI and, when the `prometheus` binary is installed,
Prometheus; records each PID in .run/stack.json; `down` stops exactly those PIDs. Settings come
from environment variables (the Makefile passes `make up VAR=value` through):

    LLAMA_MODEL        tiny (default when no terminal or no hub) | auto | a Hugging Face model id
    LLAMA_VLLM_PORT    8000        LLAMA_API_PORT   8080
    LLAMA_UI_PORT      3000        LLAMA_PROM_PORT  9090
    LLAMA_RUN_DIR      .run        (state file, logs, Prometheus data)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from scripts.localstack import process
from scripts.localstack.process import REPO_ROOT, ManagedProcess, StartupError

DEFAULT_HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"  # ungated, about 1 GB, answers sensibly on a CPU
TINY_SERVED_NAME = "tiny-llama"
HUB_URL = "https://huggingface.co"


class UsageError(RuntimeError):
    """Something the user can fix; the message says what and how."""


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
        def port(var: str, default: int) -> int:
            raw = os.environ.get(var) or str(default)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise UsageError(f"{var}={raw!r} is not a TCP port; use a number between 1 and 65535")
            return int(raw)

        run_dir = Path(os.environ.get("LLAMA_RUN_DIR") or REPO_ROOT / ".run")
        return cls(
            run_dir=run_dir.resolve(),
            model=os.environ.get("LLAMA_MODEL") or "tiny",
            vllm_port=port("LLAMA_VLLM_PORT", 8000),
            api_port=port("LLAMA_API_PORT", 8080),
            ui_port=port("LLAMA_UI_PORT", 3000),
            prom_port=port("LLAMA_PROM_PORT", 9090),
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


def load_state(settings: Settings) -> list[Part]:
    try:
        raw = json.loads(settings.state_file.read_text())
    except FileNotFoundError:
        return []
    return [Part(**item) for item in raw["parts"]]


def save_state(settings: Settings, parts: list[Part]) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"parts": [asdict(p) for p in parts]}, indent=2))
    tmp.replace(settings.state_file)


# ---------------------------------------------------------------- model choice


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        return httpx.head(HUB_URL, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


def choose_model(settings: Settings) -> tuple[str, str, bool]:
    """(model for vLLM, served name, is_tiny). Never touches the network unless asked to."""
    choice = settings.model
    if choice == "auto":
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if interactive and hub_reachable():
            answer = (
                input(
                    f"Download and serve {DEFAULT_HUB_MODEL} (about 1 GB) instead of the tiny "
                    "offline model? [y/N] "
                )
                .strip()
                .lower()
            )
            choice = DEFAULT_HUB_MODEL if answer in {"y", "yes"} else "tiny"
        else:
            choice = "tiny"
    if choice == "tiny":
        return str(ensure_tiny_model()), TINY_SERVED_NAME, True
    if "/" not in choice:
        raise UsageError(
            f"LLAMA_MODEL={choice!r} is neither 'tiny', 'auto' nor a Hugging Face id "
            f"like {DEFAULT_HUB_MODEL!r}"
        )
    if not hub_reachable():
        raise UsageError(
            f"LLAMA_MODEL={choice} needs the Hugging Face hub, which does not answer from "
            "here; run `make up` without LLAMA_MODEL to serve the tiny offline model"
        )
    return choice, choice.split("/")[-1].lower(), False


def ensure_tiny_model() -> Path:
    from scripts.localstack import vllm
    from scripts.tiny_model import DEFAULT_OUT, is_complete

    if not is_complete(DEFAULT_OUT):
        say("Making the tiny offline model (seconds, once) ...")
    return vllm.ensure_tiny_model()


# ---------------------------------------------------------------- up / down / status / logs


def check_ports(settings: Settings, with_prometheus: bool) -> None:
    wanted = {
        "LLAMA_VLLM_PORT": settings.vllm_port,
        "LLAMA_API_PORT": settings.api_port,
        "LLAMA_UI_PORT": settings.ui_port,
    }
    if with_prometheus:
        wanted["LLAMA_PROM_PORT"] = settings.prom_port
    if len(set(wanted.values())) != len(wanted):
        raise UsageError(f"two parts were given the same port: {wanted}; give each its own")
    busy = [f"{var}={port}" for var, port in wanted.items() if not process.port_is_free(port)]
    if busy:
        raise UsageError(
            f"port(s) already in use: {', '.join(busy)}. Stop what listens there "
            f"(`ss -ltnp 'sport = :{busy[0].split('=')[1]}'` shows it) or pick another, "
            f"e.g. `make up {busy[0].split('=')[0]}={int(busy[0].split('=')[1]) + 1}`"
        )


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


def up(settings: Settings) -> int:
    running = [p for p in load_state(settings) if p.is_ours()]
    if running:
        say("The local stack is already running (`make down` stops it):")
        print_status(running)
        return 0

    prometheus_bin = shutil.which("prometheus")
    check_ports(settings, with_prometheus=prometheus_bin is not None)
    model, served_name, tiny = choose_model(settings)
    if tiny:
        say(
            f"Model: the tiny offline model ({served_name}). It has random weights: its replies are random "
            f"tokens. For real answers: make up LLAMA_MODEL={DEFAULT_HUB_MODEL}"
        )
    else:
        say(f"Model: {model} (served as {served_name}); the first start downloads it.")

    from scripts.localstack import chat_api, ui, vllm

    logs = settings.log_dir
    parts: list[Part] = []
    vllm_url = f"http://127.0.0.1:{settings.vllm_port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    ui_url = f"http://127.0.0.1:{settings.ui_port}"
    say("Starting (Ctrl-C stops the waiting, `make down` stops the stack):")
    try:
        wait_for(
            "vLLM",
            vllm.start_vllm(
                model, settings.vllm_port, logs / "vllm.log", served_name=served_name, wait=False
            ),
            vllm_url,
            f"{vllm_url}/health",
            timeout=900,
            parts=parts,
            settings=settings,
        )
        wait_for(
            "chat-api",
            chat_api.start_chat_api(
                settings.api_port,
                vllm_url,
                logs / "chat-api.log",
                env={"CHAT_API_CORS_ORIGINS": ui_url},
                wait=False,
            ),
            api_url,
            f"{api_url}/readyz",
            timeout=120,
            parts=parts,
            settings=settings,
        )
        wait_for(
            "UI",
            ui.start_ui(REPO_ROOT / "ui" / "dist", settings.ui_port, api_url, logs / "ui.log", wait=False),
            ui_url,
            f"{ui_url}/config.json",
            timeout=60,
            parts=parts,
            settings=settings,
        )
        if prometheus_bin:
            from scripts.localstack import prometheus

            prom_url = f"http://127.0.0.1:{settings.prom_port}"
            wait_for(
                "Prometheus",
                prometheus.start_local_prometheus(
                    settings.run_dir / "prometheus",
                    settings.prom_port,
                    logs / "prometheus.log",
                    vllm_target=f"127.0.0.1:{settings.vllm_port}",
                    chat_api_target=f"127.0.0.1:{settings.api_port}",
                    wait=False,
                ),
                prom_url,
                f"{prom_url}/-/ready",
                timeout=60,
                parts=parts,
                settings=settings,
            )
        else:
            say("  Prometheus  not installed (Debian/Ubuntu: apt-get install prometheus); skipped")
    except (StartupError, KeyboardInterrupt) as exc:
        say(f"\n{exc}" if isinstance(exc, StartupError) else "\nInterrupted.")
        say("Stopping what was started ...")
        stop_parts(settings, parts)
        return 1

    say("")
    say(f"Open the chat:      {ui_url}")
    say(f"OpenAI-compatible:  {api_url}/v1  (model {served_name!r}, no API key locally)")
    say(f"vLLM direct:        {vllm_url}/v1")
    say(f"Logs:               {logs}/  (make logs)")
    say("Stop everything:    make down")
    return 0


def stop_parts(settings: Settings, parts: list[Part]) -> None:
    for part in reversed(parts):
        if part.is_ours():
            process.stop_pid(part.pid)
            say(f"  stopped {part.name} (pid {part.pid})")
        else:
            say(f"  {part.name} (pid {part.pid}) was not running")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.localstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status", "logs"])
    parser.add_argument("--follow", "-f", action="store_true", help="logs: keep following")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "up":
            return up(settings)
        if args.command == "down":
            return down(settings)
        if args.command == "status":
            return status(settings)
        return logs(settings, args.follow)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
