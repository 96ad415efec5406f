"""scripts/relay_cost.py, the tool whose figures docs/benchmarks.md quotes, still measures: both of its
modes run end to end against a real `python -m chat_api` and print figures that parse."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from scripts.local_run.process import REPO_ROOT

pytestmark = pytest.mark.integration


def two_free_ports() -> int:
    """A port p with p + 1 free too (chat-api listens on p, the token source on p + 1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports")


def relay_cost(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.relay_cost", "--port", str(two_free_ports()), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_cpu_per_request_is_counted_for_every_stream_without_errors() -> None:
    out = relay_cost("-n", "60", "-c", "4", "--tokens", "8")
    assert "60 streams of 8 tokens (0 errors)" in out
    cpu = float(re.search(r"chat-api: ([0-9.]+) CPU s per 1000 requests", out).group(1))
    assert cpu > 0


def direct_and_through(out: str, label: str) -> tuple[float, float]:
    """The two medians of a `--first-byte` / `--first-token` report line, whose difference it prints."""
    found = re.search(
        rf"{label}, 1 stream, 100 requests per arm: direct ([0-9.]+) ms, "
        r"through chat-api ([0-9.]+) ms \(median\): chat-api adds (-?[0-9.]+) ms",
        out,
    )
    assert found, out
    direct, through, added = (float(x) for x in found.groups())
    assert added == pytest.approx(through - direct, abs=0.011)
    return direct, through


def test_first_byte_compares_the_token_source_direct_with_chat_api() -> None:
    direct, through = direct_and_through(relay_cost("--first-byte", "-n", "100"), "first byte")
    # A relay cannot answer before the source it relays: through chat-api is the slower arm.
    assert 0 < direct < through


def test_first_token_waits_out_the_prefill_in_both_arms() -> None:
    out = relay_cost("--first-token", "--prefill-ms", "20", "-n", "100")
    direct, through = direct_and_through(out, "first token after a 20 ms prefill")
    # Each arm's first token came after the token source's 20 ms, and never first through chat-api.
    assert 20 <= direct < through
