"""Real vLLM (the CPU build, in .venv-vllm) serving a local model directory on loopback.

The flags are the ones that make vLLM CPU serve the tiny Llama on a small shared machine:
float32 (no bf16 kernels needed), eager mode (no compile step), a 1 GiB KV cache and the engine
in-process (no extra engine-core process to leak).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from scripts import tiny_model
from scripts.local_run.process import REPO_ROOT, ManagedProcess, StartupError, http_ok

VLLM_VENV = REPO_ROOT / ".venv-vllm"
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
DEFAULT_SERVED_NAME = tiny_model.SERVED_NAME
# About 18 s when the machine is idle; several helpers share two cores, so give it room.
READY_TIMEOUT_S = 240.0

VLLM_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def vllm_available() -> tuple[bool, str]:
    """Whether vLLM can run here, and if not, the reason and the fix."""
    if not VLLM_PYTHON.exists():
        return False, f"vLLM venv missing ({VLLM_VENV}); create it with `make deps-local`"
    if not (VLLM_VENV / ".installed").exists() and not any(VLLM_VENV.glob("lib/python*/site-packages/vllm")):
        return False, f"vLLM is not installed in {VLLM_VENV}; run `make deps-local`"
    return True, ""


def ensure_tiny_model(out: Path | None = None) -> Path:
    """The tiny offline Llama, made first if missing (seconds). Raises StartupError with its output.

    scripts.tiny_model needs torch and transformers, which live in the vLLM venv.
    """
    from scripts.tiny_model import DEFAULT_OUT, is_complete

    out = out or DEFAULT_OUT
    if is_complete(out):
        return out
    result = subprocess.run(
        [str(VLLM_PYTHON), "-m", "scripts.tiny_model", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise StartupError(
            f"scripts.tiny_model failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return out


def ensure_local_model(out: Path | None = None, timeout: float = 1800) -> Path:
    """SmolLM2-135M-Instruct prepared by scripts.smollm2 (in the vLLM venv), when missing or stale.

    Its progress goes straight to our stdout; a failure raises StartupError (its message is above).
    """
    from scripts.smollm2 import DEFAULT_OUT, is_complete

    out = out or DEFAULT_OUT
    if is_complete(out):
        return out
    ok, reason = vllm_available()
    if not ok:
        raise StartupError(reason)
    result = subprocess.run(
        [str(VLLM_PYTHON), "-m", "scripts.smollm2", "--out", str(out)],
        cwd=REPO_ROOT,
        env={**os.environ, **VLLM_ENV, "HF_HUB_OFFLINE": "1"},
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise StartupError(f"preparing the model failed (exit {result.returncode}, see above)")
    return out


def vllm_argv(model_dir: Path, port: int, served_name: str, extra_args: Sequence[str] = ()) -> list[str]:
    return [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "2048",
        # An access-log line per request costs CPU that the benchmark would charge to vLLM.
        "--disable-uvicorn-access-log",
        *extra_args,
    ]


def start_vllm(
    model_dir: Path,
    port: int,
    log_path: Path,
    served_name: str = DEFAULT_SERVED_NAME,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
    on_wait: Callable[[float], None] | None = None,
    cpus: frozenset[int] | None = None,
) -> ManagedProcess:
    """Start vLLM on 127.0.0.1:`port` and (by default) wait until `/health` answers 200.

    `cpus` pins it (API server and engine; the engine's torch threads follow the pinned count).

    On failure the process is stopped and `StartupError` carries the tail of its log.
    """
    ok, reason = vllm_available()
    if not ok:
        raise FileNotFoundError(reason)
    proc = ManagedProcess(
        name=f"vllm:{port}",
        argv=vllm_argv(Path(model_dir), port, served_name, extra_args),
        log_path=log_path,
        env={**VLLM_ENV, **(env or {})},
        cpus=cpus,
    ).start()
    if wait:
        proc.wait_ready(
            http_ok(f"http://127.0.0.1:{port}/health"), timeout=timeout, on_wait=on_wait, stop_on_failure=True
        )
    return proc
