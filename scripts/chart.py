"""Render and lint the platform chart with Helm's own engine, in-process.

    python -m scripts.chart template --values values/aws-t4.yaml [--values more.yaml] \
        --release llama --namespace llama
    python -m scripts.chart lint

The CLI and the chart tests share this module, so what `make template` prints is what the tests
check. Rendering goes through helm-python-sdk's native `helm_render` because the Python wrapper
hides the two options the checks need: the Kubernetes version and the API versions that the
`.Capabilities` of a real cluster would announce (monitoring.coreos.com, keda.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from node_bootstrap.helm_release import deep_merge  # Helm's `-f` merge, one copy for both

REPO = Path(__file__).resolve().parent.parent
CHARTS_DIR = REPO / "charts"
UMBRELLA = CHARTS_DIR / "platform"
KUBE_VERSION = "v1.29.15"
# What a cluster with kube-prometheus-stack, KEDA and cert-manager installed announces. Helm's
# `.Capabilities.APIVersions.Has` matches strings exactly, so each kind is listed as well as the group.
API_VERSIONS: tuple[str, ...] = (
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "keda.sh/v1alpha1",
    "keda.sh/v1alpha1/ScaledObject",
    # cert-manager (chat-ui.tls.certManager refuses to render without it).
    "cert-manager.io/v1",
)

# Lint messages: 1 info, 2 warning, 3 error. `helm lint --strict` fails on warnings and errors.
_LINT_FAILING_SEVERITY = 2


class ChartError(Exception):
    """A chart failed to render or lint; the message is Helm's, naming the value and the fix."""


_UNKNOWN_KEY = re.compile(r"additional properties? (.+?) not allowed")
_WRONG_TYPE = re.compile(r"got (\w+), want (\w+)")


def explain(message: str) -> str:
    """Helm's schema errors name the key; add the fix in words where Helm leaves it implicit."""
    hints = []
    if match := _UNKNOWN_KEY.search(message):
        hints.append(
            f"{match.group(1)} is not a value the chart knows there (a typo?); "
            "the chart's values.yaml lists every valid key"
        )
    if match := _WRONG_TYPE.search(message):
        hints.append(f"give a value of type {match.group(2)} there, not a {match.group(1)}")
    return message.rstrip() + "".join(f"\nfix: {hint}" for hint in hints)


# Helm's chart loader notes every symlinked directory on stderr, once per load. The subcharts' copies of
# the platform-lib library are such links (charts/platform/charts/platform-lib/Chart.yaml says why), so
# the note says nothing a user can act on; every other line Helm writes still reaches stderr.
_SYMLINK_NOTE = re.compile(rb"^\S+ \S+ INFO found symbolic link in path\..*\n?", re.MULTILINE)


@contextlib.contextmanager
def _without_symlink_notes() -> Iterator[None]:
    """Run Helm's native code with its stderr captured, then pass on all but the symlink notes."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = _SYMLINK_NOTE.sub(b"", captured.read())
            if rest:
                sys.stderr.write(rest.decode("utf-8", errors="replace"))
                sys.stderr.flush()


def load_values_file(path: str | Path) -> dict[str, Any]:
    """One `-f` file as a dict (an empty file is an empty dict, like Helm)."""
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ChartError(f"{path}: a values file must hold a mapping at the top, not {type(data).__name__}")
    return data


def merged_values(
    values_files: Iterable[str | Path], extra_values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """All `-f` files merged in order, then `extra_values` (the `--set` layer) on top."""
    merged: dict[str, Any] = {}
    for path in values_files:
        merged = deep_merge(merged, load_values_file(path))
    if extra_values:
        merged = deep_merge(merged, extra_values)
    return merged


def render_templates(
    values: Mapping[str, Any],
    release: str = "llama",
    namespace: str = "llama",
    api_versions: Sequence[str] = API_VERSIONS,
    chart_dir: Path | None = None,
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce (schema checks included)."""
    from helm_python import Chart, _native
    from helm_python.errors import HelmError

    options = {
        "name": release,
        "namespace": namespace,
        "kube_version": KUBE_VERSION,
        "api_versions": list(api_versions),
        "is_install": True,
    }
    try:
        with _without_symlink_notes(), Chart.load(chart_dir or UMBRELLA) as chart:
            out = _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
    except HelmError as exc:
        raise ChartError(explain(str(exc))) from exc
    rendered: dict[str, str] = json.loads(out)
    return rendered


def _documents(templates: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for source in sorted(templates):
        if not source.endswith((".yaml", ".yml")):
            continue  # NOTES.txt and helpers
        for doc in yaml.safe_load_all(templates[source]):
            if doc:
                docs.append((source, doc))
    return docs


def render(
    values_files: Iterable[str | Path],
    release: str = "llama",
    namespace: str = "llama",
    extra_values: Mapping[str, Any] | None = None,
    api_versions: Sequence[str] = API_VERSIONS,
) -> list[dict[str, Any]]:
    """The manifests the umbrella chart renders for these values files, as dicts."""
    values = merged_values(values_files, extra_values)
    return [doc for _, doc in _documents(render_templates(values, release, namespace, api_versions))]


def render_text(
    values_files: Iterable[str | Path],
    release: str = "llama",
    namespace: str = "llama",
    extra_values: Mapping[str, Any] | None = None,
) -> str:
    """The rendered manifests as one YAML stream with `# Source:` headers, like `helm template`."""
    values = merged_values(values_files, extra_values)
    templates = render_templates(values, release, namespace)
    parts = []
    for source in sorted(templates):
        body = templates[source].strip()
        if source.endswith((".yaml", ".yml")) and body:
            parts.append(f"---\n# Source: {source}\n{body}\n")
    return "".join(parts)


def chart_dirs() -> list[Path]:
    """Every chart directory under charts/: the umbrella and each subchart, however deep."""
    return sorted(path.parent for path in CHARTS_DIR.rglob("Chart.yaml"))


def umbrella_globals() -> dict[str, Any]:
    """The umbrella's `global` block: the one place shared values are defined (subcharts keep none)."""
    return {"global": load_values_file(UMBRELLA / "values.yaml").get("global", {})}


@cache
def _lint_cached(chart_dir: str) -> tuple[str, ...]:
    from helm_python import lint

    # A subchart linted alone gets the umbrella's `global`, as it does inside the umbrella: the shared
    # values (model, ports, node contract) are defined there only.
    values = umbrella_globals() if Path(chart_dir) != UMBRELLA.resolve() else None
    with _without_symlink_notes():
        report = lint(chart_dir, values, strict=True, kube_version=KUBE_VERSION, quiet=False)
    problems = [str(err) for err in report.get("errors") or []]
    for message in report.get("messages") or []:
        if int(message.get("severity", 0)) >= _LINT_FAILING_SEVERITY:
            problems.append(f"{message.get('path', '')}: {message.get('error', '')}")
    return tuple(problems)


def lint_chart(chart_dir: str | Path) -> list[str]:
    """`helm lint --strict` of one chart directory with its own default values: the problems found."""
    return list(_lint_cached(str(Path(chart_dir).resolve())))


def lint_all() -> dict[Path, list[str]]:
    """Lint every chart directory; maps each directory to its problems (empty when clean)."""
    return {path: lint_chart(path) for path in chart_dirs()}


def parse_set(assignments: Sequence[str]) -> dict[str, Any]:
    """`--set a.b=c` pairs as nested values (strings only, like `helm --set-string`)."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise ChartError(
                f"--set {assignment!r}: write it as KEY=VALUE, e.g. global.image.registry=r.example"
            )
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


def _cmd_template(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(render_text(args.values, args.release, args.namespace, parse_set(args.set)))
    except ChartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_lint(_: argparse.Namespace) -> int:
    failed = False
    for path, problems in lint_all().items():
        name = path.relative_to(REPO)
        if problems:
            failed = True
            print(f"FAIL {name}")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"ok   {name}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.chart", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    template = sub.add_parser("template", help="print the rendered manifests of charts/platform")
    template.add_argument("--values", "-f", action="append", default=[], help="values file (repeatable)")
    template.add_argument("--set", action="append", default=[], help="KEY=VALUE string value (repeatable)")
    template.add_argument("--release", default="llama")
    template.add_argument("--namespace", default="llama")
    template.set_defaults(func=_cmd_template)
    lint_parser = sub.add_parser("lint", help="helm lint --strict every chart directory under charts/")
    lint_parser.set_defaults(func=_cmd_lint)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
