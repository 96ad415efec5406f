"""The few Kubernetes API calls `make platform` makes itself (Helm does the rest), over HTTPS with the
admin kubeconfig that `make cluster` writes: namespaces, Secrets from files and nodes (the wait for
vLLM reads pods, logs and events through vllm_wait.KubeApi).

A Secret's data travels only in the request body (never argv, never a log line); the client
certificate and key are read from the kubeconfig into memory (written to a private temporary
directory only for the moment ssl loads them, then removed).
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from .errors import BootstrapError


class KubeError(BootstrapError):
    """The Kubernetes API refused or did not answer; the message says which call and why."""


def _ssl_context(kubeconfig: dict[str, Any]) -> tuple[str, ssl.SSLContext]:
    current = kubeconfig.get("current-context")
    contexts = {c["name"]: c["context"] for c in kubeconfig.get("contexts", [])}
    if current not in contexts:
        raise KubeError(f"the kubeconfig has no current-context {current!r}. Fix: make kubeconfig")
    context = contexts[current]
    cluster = next(c["cluster"] for c in kubeconfig["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in kubeconfig["users"] if u["name"] == context["user"])
    tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    with tempfile.TemporaryDirectory(prefix="kube-client-") as private:  # 0700
        cert, key = Path(private) / "client.crt", Path(private) / "client.key"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.touch(0o600)
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        tls.load_cert_chain(cert, key)
    return cluster["server"].rstrip("/"), tls


class KubeAPI:
    """`KubeAPI.from_kubeconfig(path)`; every method raises KubeError with the API's own message."""

    def __init__(self, server: str, tls: ssl.SSLContext | bool = True, timeout_s: float = 30.0) -> None:
        self.server = server
        self._http = httpx.Client(base_url=server, verify=tls, timeout=timeout_s)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeAPI:
        if not path.is_file():
            raise KubeError(f"{path} does not exist. Fix: make kubeconfig (or make cluster first)")
        try:
            server, tls = _ssl_context(yaml.safe_load(path.read_text()))
        except KubeError:
            raise
        except (yaml.YAMLError, KeyError, StopIteration, TypeError, ValueError, OSError) as error:
            # A truncated, hand-edited or foreign file (ssl.SSLError is an OSError, bad base64 a ValueError).
            problem = f"{type(error).__name__}: {error}"
            fix = "Fix: make kubeconfig"
            raise KubeError(f"{path} is not a kubeconfig this can use ({problem}). {fix}") from error
        return cls(server, tls)

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            return self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as error:
            raise KubeError(
                f"the Kubernetes API at {self.server} did not answer {method} {path} ({error}). "
                "Fix: is the cluster running (make resume after make pause) and this address in admin_cidrs?"
            ) from error

    @staticmethod
    def _refused(response: httpx.Response, what: str) -> KubeError:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text[:300]
        return KubeError(f"the Kubernetes API refused to {what}: {response.status_code} {message}")

    def version(self) -> str:
        response = self._call("GET", "/version")
        if response.status_code != 200:
            raise self._refused(response, "say its version")
        return str(response.json().get("gitVersion", "?"))

    def ensure_namespace(self, name: str) -> bool:
        """True when it was created now."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        response = self._call("POST", "/api/v1/namespaces", body)
        if response.status_code == 409:
            return False
        if response.status_code != 201:
            raise self._refused(response, f"create the namespace {name}")
        return True

    def apply_secret(self, namespace: str, name: str, data: dict[str, bytes], labels: dict[str, str]) -> str:
        """Create or replace an Opaque Secret; returns 'created', 'updated' or 'unchanged'."""
        encoded = {key: base64.b64encode(value).decode() for key, value in data.items()}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": encoded,
        }
        path = f"/api/v1/namespaces/{namespace}/secrets"
        current = self._call("GET", f"{path}/{name}")
        if current.status_code == 404:
            created = self._call("POST", path, body)
            if created.status_code != 201:
                raise self._refused(created, f"create the Secret {namespace}/{name}")
            return "created"
        if current.status_code != 200:
            raise self._refused(current, f"read the Secret {namespace}/{name}")
        existing = current.json()
        if existing.get("data") == encoded and existing.get("type") == "Opaque":
            return "unchanged"
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        replaced = self._call("PUT", f"{path}/{name}", body)
        if replaced.status_code != 200:
            raise self._refused(replaced, f"replace the Secret {namespace}/{name}")
        return "updated"

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        response = self._call("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response, f"read the Secret {namespace}/{name}")
        return {k: base64.b64decode(v) for k, v in (response.json().get("data") or {}).items()}

    def nodes(self) -> list[dict[str, Any]]:
        response = self._call("GET", "/api/v1/nodes")
        if response.status_code != 200:
            raise self._refused(response, "list the nodes")
        return list(response.json().get("items", []))


def node_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
