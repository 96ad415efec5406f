"""Helm releases without a helm binary: Helm's own Go engine in-process (PyPI helm-python-sdk).

`make platform` and `make destroy` install, upgrade and uninstall through the narrow interface
`Releases` below; `HelmReleases` is the real one (helm_python.Config with the cluster's
kubeconfig). Third-party charts come from their repositories at a pinned version, pulled by
helm_python into build/platform/charts/ and installed from that archive, so what runs is exactly
the pinned version. `helm install llama ./charts/platform -f values/aws-t4.yaml` keeps working for
whoever prefers the helm binary: the release names and namespaces are the README's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from .errors import BootstrapError


class ReleaseError(BootstrapError):
    """A Helm action failed; the message is Helm's own, with what to do."""


@dataclass(frozen=True)
class PinnedChart:
    """A chart from a repository at one version (an HTTP repository, or an oci:// reference)."""

    name: str
    version: str
    repo_url: str = ""  # empty: `name` is an oci:// reference

    @property
    def archive_name(self) -> str:
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


# The versions the README's hand-written commands name; change them together.
KUBE_PROMETHEUS_STACK = PinnedChart(
    "kube-prometheus-stack", "88.6.4", "https://prometheus-community.github.io/helm-charts"
)
CERT_MANAGER = PinnedChart("oci://quay.io/jetstack/charts/cert-manager", "v1.19.1")


class Releases(Protocol):
    """Helm's release actions as the flow uses them. A test double must refuse what Helm refuses."""

    def status(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The release's summary (`info.status`, `version`), or None when there is none."""

    def install(
        self, chart: Path, name: str, namespace: str, values: dict[str, Any], timeout_s: int, wait: bool
    ) -> dict[str, Any]:
        """`helm install --create-namespace [--wait --rollback-on-failure]`."""

    def upgrade(
        self, chart: Path, name: str, namespace: str, values: dict[str, Any], timeout_s: int, wait: bool
    ) -> dict[str, Any]:
        """`helm upgrade [--wait --rollback-on-failure]`: a new revision."""

    def uninstall(self, name: str, namespace: str, timeout_s: int) -> bool:
        """`helm uninstall --wait`; False when there was no such release."""


def deploy(
    releases: Releases,
    chart: Path,
    name: str,
    namespace: str,
    values: dict[str, Any],
    timeout_s: int,
    wait: bool,
) -> dict[str, Any]:
    """`helm upgrade --install`, made resumable: a first install that failed half way (its only
    revision `failed` or stuck `pending-install`, e.g. the laptop went to sleep) is removed and
    installed again, since Helm refuses to upgrade a release that has no deployed revision."""
    current = releases.status(name, namespace)
    state = ((current or {}).get("info") or {}).get("status", "")
    if current is not None and state in ("failed", "pending-install") and current.get("version") == 1:
        releases.uninstall(name, namespace, timeout_s)
        current = None
    elif state in ("pending-upgrade", "pending-rollback"):
        raise ReleaseError(
            f"the release {name} (namespace {namespace}) is {state}: another helm is changing it, or one was "
            f"stopped half way. Fix: wait for it, or roll it back (helm rollback {name} -n {namespace}), "
            "then re-run"
        )
    if current is None:
        return releases.install(chart, name, namespace, values, timeout_s, wait)
    return releases.upgrade(chart, name, namespace, values, timeout_s, wait)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base` the way `helm -f base -f override` does.

    Maps merge key by key; any other value (lists included) replaces. A null is kept as null: Helm
    then drops the chart's default for that key, as `helm -f` does. (scripts/chart.py uses it too.)
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_from_files(*paths: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in paths:
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ReleaseError(f"{path} is not a map of values (it holds a {type(loaded).__name__})")
        merged = deep_merge(merged, loaded)
    return merged


def pull(chart: PinnedChart, destination: Path) -> Path:
    """The chart archive at its pinned version, pulled once into `destination`."""
    import helm_python

    archive = destination / chart.archive_name
    if archive.is_file():
        return archive
    destination.mkdir(parents=True, exist_ok=True)
    try:
        if chart.repo_url:
            helm_python.pull(
                chart.name, repo_url=chart.repo_url, version=chart.version, destination=destination
            )
        else:
            helm_python.pull(chart.name, version=chart.version, destination=destination)
    except helm_python.HelmError as error:
        where = chart.repo_url or chart.name
        raise ReleaseError(
            f"could not download the chart {chart.name} {chart.version} from {where} ({error.detail}). "
            "Fix: check this machine reaches it (proxy, DNS), then re-run"
        ) from error
    if not archive.is_file():
        found = sorted(p.name for p in destination.glob("*.tgz"))
        raise ReleaseError(
            f"pulled {chart.name} {chart.version} but {archive.name} is not there (found {found})"
        )
    return archive


class HelmReleases:
    """The real thing: helm_python.Config on the cluster's kubeconfig (storage: Secrets, as helm)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def _config(self, namespace: str) -> Any:
        import helm_python

        return helm_python.Config(kubeconfig_path=self.kubeconfig, namespace=namespace)

    def status(self, name: str, namespace: str) -> dict[str, Any] | None:
        import helm_python

        with self._config(namespace) as config:
            try:
                return dict(config.status(name))
            except helm_python.HelmNotFoundError:
                return None
            except helm_python.HelmError as error:
                raise ReleaseError(self._explain("status", name, namespace, error)) from error

    @staticmethod
    def _waiting(wait: bool) -> dict[str, Any]:
        # Rolling back needs the wait (Helm's --atomic); the platform release is not waited for: the
        # live wait explains vLLM's start-up instead of blocking silently for 20 minutes.
        return {"wait": "watcher", "rollback_on_failure": True} if wait else {}

    def install(
        self, chart: Path, name: str, namespace: str, values: dict[str, Any], timeout_s: int, wait: bool
    ) -> dict[str, Any]:
        import helm_python

        with self._config(namespace) as config:
            try:
                return dict(
                    config.install(
                        str(chart), name, values, namespace=namespace, create_namespace=True,
                        timeout=timeout_s, **self._waiting(wait),
                    )
                )  # fmt: skip
            except helm_python.HelmError as error:
                raise ReleaseError(self._explain("install", name, namespace, error)) from error

    def upgrade(
        self, chart: Path, name: str, namespace: str, values: dict[str, Any], timeout_s: int, wait: bool
    ) -> dict[str, Any]:
        import helm_python

        with self._config(namespace) as config:
            try:
                return dict(
                    config.upgrade(
                        str(chart), name, values, namespace=namespace, timeout=timeout_s, max_history=10,
                        **self._waiting(wait),
                    )
                )  # fmt: skip
            except helm_python.HelmError as error:
                raise ReleaseError(self._explain("upgrade", name, namespace, error)) from error

    def uninstall(self, name: str, namespace: str, timeout_s: int) -> bool:
        import helm_python

        with self._config(namespace) as config:
            try:
                config.uninstall(name, timeout=timeout_s, wait="watcher")
            except helm_python.HelmNotFoundError:
                return False
            except helm_python.HelmError as error:
                raise ReleaseError(self._explain("uninstall", name, namespace, error)) from error
        return True

    def _explain(self, action: str, name: str, namespace: str, error: Exception) -> str:
        import helm_python

        detail = getattr(error, "detail", str(error))
        if isinstance(error, helm_python.HelmKubeError):
            return (
                f"helm {action} {name} (namespace {namespace}): the Kubernetes API did not answer "
                f"({detail}). "
                f"Fix: check {self.kubeconfig} points at the running cluster (make kubeconfig; a paused "
                "cluster needs make resume)"
            )
        return f"helm {action} {name} (namespace {namespace}) failed: {detail}"
