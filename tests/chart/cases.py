"""The values cases every chart test renders: each environment file in values/, each scenario in
charts/platform/ci/, and the chart's own defaults. Each renders once per session (cached)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from scripts import chart

ENV_VALUES_DIR = chart.REPO / "values"
SCENARIO_DIR = chart.UMBRELLA / "ci"
RELEASE = "llama"
NAMESPACE = "llama"
# Where the tests say `make images` pushed chat-api and chat-ui: the chart refuses an install that
# does not name it (those images are published nowhere else), so every case renders with it unless
# its values files name one themselves.
IMAGE_REGISTRY = "registry.example.com/llama"


# What `terraform -chdir=terraform output -raw edge_values` writes (terraform/outputs.tf) for a
# cluster whose edge worker is llama-worker-1 at 10.10.1.23 behind the Elastic IP 203.0.113.7.
AWS_EDGE: dict[str, Any] = {
    "chat-ui": {
        "edge": {"externalIPs": ["10.10.1.23"]},
        "nodeSelector": {"kubernetes.io/hostname": "llama-worker-1"},
        "tls": {"host": "203-0-113-7.sslip.io"},
    },
    "chat-api": {"store": {"redis": {"nodeSelector": {"kubernetes.io/hostname": "llama-worker-1"}}}},
}
# The sign-in settings a team fills into values/aws-*.yaml (README "On AWS", Google's).
SIGN_IN: dict[str, Any] = {
    "chat-api": {
        "auth": {
            "oidc": {
                "issuerUrl": "https://accounts.google.com",
                "clientId": "1234-abc.apps.googleusercontent.com",
                "clientSecretSecret": "chat-signin",
                "redirectUrl": "https://203-0-113-7.sslip.io/auth/callback",
                "allowedDomains": ["example.com"],
            }
        }
    },
    "chat-ui": {"config": {"signIn": True}},
}


def install_layers(files: Iterable[Path]) -> dict[str, Any]:
    """What a user's install adds to `files`: `--set global.image.registry=IMAGE_REGISTRY` unless they
    name one, and for the AWS profiles (chat-ui.tls on, its host left to fill in) Terraform's
    edge.yaml and the sign-in settings. The chart refuses to render those profiles without them."""
    merged = chart.merged_values(list(files))
    layer: dict[str, Any] = {}
    if not merged.get("global", {}).get("image", {}).get("registry"):
        layer["global"] = {"image": {"registry": IMAGE_REGISTRY}}
    tls = merged.get("chat-ui", {}).get("tls", {})
    if tls.get("enabled") and not tls.get("host"):
        layer = chart.deep_merge(layer, AWS_EDGE)
        if not merged.get("chat-api", {}).get("auth", {}).get("oidc", {}).get("issuerUrl"):
            layer = chart.deep_merge(layer, SIGN_IN)
    return layer


def with_image_registry(files: Iterable[Path], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`extra` on top of the layers a user's install has (install_layers: the image registry, and on
    AWS Terraform's edge values and the sign-in settings)."""
    return chart.deep_merge(install_layers(files), extra or {})


@dataclass(frozen=True)
class Case:
    """One `helm template` invocation: a name and the `-f` files, in order."""

    name: str
    files: tuple[Path, ...]


def env_values_files() -> list[Path]:
    return sorted(ENV_VALUES_DIR.glob("*.yaml"))


def scenario_files() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def all_cases() -> list[Case]:
    cases = [Case("defaults", ())]
    cases += [Case(f"values/{p.name}", (p,)) for p in env_values_files()]
    cases += [Case(f"ci/{p.name}", (p,)) for p in scenario_files()]
    return cases


@cache
def _render_cached(files: tuple[Path, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(
        chart.render(files, release=RELEASE, namespace=NAMESPACE, extra_values=with_image_registry(files))
    )


def rendered(case: Case) -> list[dict[str, Any]]:
    """The manifests of a case (rendered once per session, then served from the cache)."""
    return list(_render_cached(case.files))


def render_with(files: tuple[Path, ...] | list[Path], extra_values: dict[str, Any]) -> list[dict[str, Any]]:
    """Render with a `--set`-like layer on top; raises chart.ChartError with Helm's message."""
    return chart.render(
        list(files),
        release=RELEASE,
        namespace=NAMESPACE,
        extra_values=with_image_registry(files, extra_values),
    )


def find(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of `kind` (and `name`), or an AssertionError listing what is there."""
    hits = [m for m in manifests if m.get("kind") == kind and (name is None or m["metadata"]["name"] == name)]
    assert len(hits) == 1, (
        f"expected one {kind} {name or ''}, got {[(m['kind'], m['metadata']['name']) for m in manifests]}"
    )
    return hits[0]
