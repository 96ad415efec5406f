"""Named test doubles for `make platform`'s tests: only what cannot exist on this machine.

The Kubernetes API server is the one double of tests/fixtures/kube_api_double.py (`KubeApiDouble`:
kube-apiserver 1.29's discovery, nodes, namespaces, secrets, pods, pod logs and events over HTTPS with
kubeadm's admin client certificate); here are the others.

- `HelmDouble`: a TEST DOUBLE of Helm v4's install/upgrade/uninstall actions (helm.sh/helm/v4
  pkg/action install.go, upgrade.go, uninstall.go) behind node_bootstrap.helm_release.Releases, for
  the flow tests (helm_python's Go client needs a full API server: discovery, OpenAPI, watches).
  As strict as Helm where it matters here: the release name is checked by Helm's own validator, the
  chart is rendered by Helm's own engine (helm-python-sdk, in-process) with the values and the
  `.Capabilities.APIVersions` the cluster has at that moment (kube-prometheus-stack's and
  cert-manager's CRDs exist only once their releases are installed), so a chart that Helm would
  refuse is refused here, with Helm's message; `helm upgrade` bumps the revision, uninstall of a
  missing release is "not found".
- `HubDouble`: a TEST DOUBLE of the Hugging Face Hub's auth-check API
  (`GET /api/models/<repo>/auth-check`), answering as huggingface_hub 2.4's hf_raise_for_status
  expects (src/huggingface_hub/utils/_http.py): 200 granted; 403 `X-Error-Code: GatedRepo` for a
  valid token without access; 401 `X-Error-Message: Invalid credentials in Authorization header`
  for an unknown token; 404 `X-Error-Code: RepoNotFound` for an unknown repository.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# ------------------------------------------------------------------------------ Helm


@dataclass
class Release:
    name: str
    namespace: str
    chart: str
    version: int
    values: dict[str, Any]
    manifest: dict[str, str]
    status: str = "deployed"


# What each chart's CRDs add to a cluster's API (what `.Capabilities.APIVersions.Has` then sees).
CRD_APIS = {
    "kube-prometheus-stack": (
        "monitoring.coreos.com/v1",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "monitoring.coreos.com/v1/PodMonitor",
        "monitoring.coreos.com/v1/PrometheusRule",
    ),
    "cert-manager": ("cert-manager.io/v1",),
}


@dataclass
class HelmDouble:
    releases: dict[tuple[str, str], Release] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (action, name, namespace)
    # release name -> error, once: the action fails after storing a `failed` revision, as Helm does
    # when creating the objects fails without --rollback-on-failure (install.go: failRelease).
    fail_next: dict[str, str] = field(default_factory=dict)

    def api_versions(self) -> list[str]:
        found: list[str] = []
        for release in self.releases.values():
            if release.status == "deployed":
                found += CRD_APIS.get(release.chart, ())
        return found

    def status(self, name: str, namespace: str) -> dict[str, Any] | None:
        release = self.releases.get((name, namespace))
        if release is None:
            return None
        return {
            "name": name,
            "namespace": namespace,
            "version": release.version,
            "info": {"status": release.status},
        }

    def install(
        self, chart: Path, name: str, namespace: str, values: dict[str, Any], timeout_s: int, wait: bool
    ) -> dict[str, Any]:
        from node_bootstrap.helm_release import ReleaseError

        self.calls.append(("install", name, namespace))
        if (name, namespace) in self.releases:  # install.go: availableName
            raise ReleaseError(f"helm install {name} failed: cannot re-use a name that is still in use")
        return self._store("install", chart, name, namespace, values, 1, wait)

    def upgrade(
        self, chart: Path, name: str, namespace: str, values: dict[str, Any], timeout_s: int, wait: bool
    ) -> dict[str, Any]:
        from node_bootstrap.helm_release import ReleaseError

        self.calls.append(("upgrade", name, namespace))
        current = self.releases.get((name, namespace))
        if current is None or (current.version == 1 and current.status != "deployed"):
            # upgrade.go prepareUpgrade: "has no deployed releases" (driver.ErrNoDeployedReleases)
            raise ReleaseError(f'helm upgrade {name} failed: "{name}" has no deployed releases')
        return self._store("upgrade", chart, name, namespace, values, current.version + 1, wait)

    def _store(
        self,
        action: str,
        chart: Path,
        name: str,
        namespace: str,
        values: dict[str, Any],
        version: int,
        wait: bool,
    ) -> dict[str, Any]:
        import helm_python
        from helm_python import Chart, _native
        from node_bootstrap.helm_release import ReleaseError

        try:
            helm_python.validate_release_name(name)
            options = {"name": name, "namespace": namespace, "kube_version": "v1.29.15",
                       "api_versions": self.api_versions(), "is_install": action == "install",
                       "is_upgrade": action == "upgrade"}  # fmt: skip
            with Chart.load(str(chart)) as loaded:
                chart_name = loaded.name
                manifest = json.loads(
                    _native.call_string("helm_render", loaded._raw(), json.dumps(values), json.dumps(options))
                )
        except helm_python.HelmError as error:
            # Rendering fails before anything is stored: no revision, as in Helm.
            raise ReleaseError(
                f"helm {action} {name} (namespace {namespace}) failed: {error.detail}"
            ) from error
        failure = self.fail_next.pop(name, "")
        status = "failed" if failure else "deployed"
        if failure and wait:
            # --rollback-on-failure: a failed install is uninstalled, a failed upgrade rolled back to
            # the revision before it; either way nothing new is left deployed.
            raise ReleaseError(failure)
        self.releases[(name, namespace)] = Release(
            name, namespace, chart_name, version, copy.deepcopy(values), manifest, status
        )
        if failure:
            raise ReleaseError(failure)
        return self.status(name, namespace) or {}

    def uninstall(self, name: str, namespace: str, timeout_s: int) -> bool:
        self.calls.append(("uninstall", name, namespace))
        return self.releases.pop((name, namespace), None) is not None


# ------------------------------------------------------------------------------ Hugging Face Hub


class HubDouble:
    """`with HubDouble(granted={token: {repo}}, known={tokens}) as hub:` -> `hub.url`, `hub.seen`."""

    def __init__(
        self,
        granted: dict[str, set[str]],
        known: set[str] | None = None,
        repos: tuple[str, ...] = ("meta-llama/Llama-3.2-3B-Instruct",),
    ) -> None:
        self.granted = granted
        self.known = set(granted) | set(known or ())
        self.repos = repos
        self.seen: list[str] = []

    def answer(self, path: str, authorization: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        match = re.fullmatch(r"/api/models/(.+)/auth-check", path)
        if not match:
            return 404, {}, {"error": "Not Found"}
        repo = match.group(1)
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if token and token not in self.known:
            return (
                401,
                {"X-Error-Message": "Invalid credentials in Authorization header"},
                {"error": "Invalid credentials in Authorization header"},
            )
        if repo not in self.repos:
            return (
                404,
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                {"error": "Repository not found"},
            )
        if repo in self.granted.get(token, set()):
            return 200, {}, {}
        message = (
            f"Access to model {repo} is restricted and you are not in the authorized list. "
            f"Visit https://huggingface.co/{repo} to ask for access."
        )
        return 403, {"X-Error-Code": "GatedRepo", "X-Error-Message": message}, {"error": message}

    def __enter__(self) -> HubDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double.seen.append(self.path)
                code, headers, body = double.answer(
                    urlsplit(self.path).path, self.headers.get("authorization", "")
                )
                data = json.dumps(body).encode()
                self.send_response(code)
                for key, value in {**headers, "content-type": "application/json"}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="hub-double", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
