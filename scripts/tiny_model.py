"""Make a tiny random Llama that real vLLM can serve: seconds, a few MB, offline, deterministic.

    .venv-vllm/bin/python -m scripts.tiny_model --out .cache/tiny-llama

The model is a `LlamaForCausalLM` (2 layers, hidden 128) with random weights from a fixed
seed, and a byte-level BPE tokenizer trained here by `tokenizers` on a small built-in corpus,
with Llama-3's special tokens and chat template. Its answers are gibberish; it exists so the
whole path (chat-api, UI, metrics, load tests) runs against the real vLLM engine without a
download or a GPU.

It needs torch and transformers, so it runs in the vLLM venv (.venv-vllm). A directory that
already holds a complete model made with the same recipe is left as it is (see `is_complete`),
so callers can run it unconditionally.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / ".cache" / "tiny-llama"
SERVED_NAME = "tiny-llama"

SEED = 1234
VOCAB_SIZE = 2048
HIDDEN_SIZE = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE_SIZE = 256
MAX_POSITIONS = 2048

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = [BOS, EOS, START_HEADER, END_HEADER, EOT, PAD]

# Llama 3's template, minus tool calling and the date preamble.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] | trim }}"
    "{%- else %}{%- for part in message['content'] %}{%- if part['type'] == 'text' %}"
    "{{- part['text'] | trim }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

# Everything that decides the output; a change makes existing copies stale.
RECIPE = {
    "version": 1,
    "seed": SEED,
    "vocab_size": VOCAB_SIZE,
    "hidden_size": HIDDEN_SIZE,
    "layers": LAYERS,
    "heads": HEADS,
    "kv_heads": KV_HEADS,
    "intermediate_size": INTERMEDIATE_SIZE,
    "max_positions": MAX_POSITIONS,
    "special_tokens": SPECIAL_TOKENS,
    "chat_template": CHAT_TEMPLATE,
}
RECIPE_HASH = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]
MARKER = ".tiny-llama-complete"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER)

_WORDS = (
    "the a an of to and in is it that for on with as was at by be this from or have not are "
    "but they one all you we can there what when which their will would about if out up so "
    "model token stream chat request server cluster node gpu memory latency answer question "
    "hello world llama platform kubernetes helm chart service metric prometheus grafana "
    "please tell me write short story about cat dog sun moon sky river mountain city night "
    "day time people way year work life good new first last long great little own other old "
    "right big high different small large next early young important few public bad same able"
).split()


def _corpus(lines: int = 4000) -> list[str]:
    """Deterministic pseudo-English, enough for BPE to learn merges (no download)."""
    import random

    rng = random.Random(SEED)  # noqa: S311 - reproducible filler text, not a secret
    out = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        sentence = " ".join(words).capitalize() + rng.choice([".", "?", "!", ","])
        if rng.random() < 0.2:
            sentence += f" {rng.randint(0, 9999)}"
        out.append(sentence)
    out.extend(["0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "{}[]()<>:;\"'`~"])
    return out


def is_complete(out: Path) -> bool:
    """True when `out` holds every file and was made by this exact recipe."""
    marker = out / MARKER
    if not all((out / name).is_file() for name in REQUIRED_FILES):
        return False
    return marker.read_text().strip() == RECIPE_HASH


def _train_tokenizer(target: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(target)


def _build_model(target: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    vocab = Tokenizer.from_file(str(target / "tokenizer.json"))
    ids = {tok: vocab.token_to_id(tok) for tok in SPECIAL_TOKENS}
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=vocab.get_vocab_size(),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOT], ids[EOS]],
        pad_token_id=ids[PAD],
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.eval()
    model.save_pretrained(target, safe_serialization=True)
    GenerationConfig(
        bos_token_id=ids[BOS], eos_token_id=[ids[EOT], ids[EOS]], pad_token_id=ids[PAD]
    ).save_pretrained(target)


def make_tiny_model(out: Path = DEFAULT_OUT, force: bool = False) -> Path:
    """Write the model to `out` (atomically: a half-written directory is never left there)."""
    out = out.resolve()
    if not force and is_complete(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-llama-", dir=out.parent))
    try:
        _train_tokenizer(staging)
        _build_model(staging)
        (staging / MARKER).write_text(RECIPE_HASH + "\n")
        # mkdtemp makes it private; the model is not a secret and other users (a container) read it.
        staging.chmod(0o755)
        for file in staging.iterdir():
            file.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        try:
            os.replace(staging, out)
        except OSError:
            # Another process (a parallel test run) finished first; its copy is as good as ours.
            if not is_complete(out):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"target directory (default {DEFAULT_OUT})"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when a complete copy exists")
    args = parser.parse_args(argv)
    if not args.force and is_complete(args.out.resolve()):
        print(f"tiny model already complete: {args.out.resolve()} (recipe {RECIPE_HASH})")
        return 0
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(
            f"error: {exc.name} is missing; run this with the vLLM venv: "
            ".venv-vllm/bin/python -m scripts.tiny_model (make deps-local installs it)",
            file=sys.stderr,
        )
        return 2
    path = make_tiny_model(args.out, force=args.force)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"tiny model written: {path} ({size / 1e6:.1f} MB, recipe {RECIPE_HASH})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
