"""Named test doubles for `make platform`'s tests: only what cannot exist on this machine.

- `KubeApiServerDouble`: a TEST DOUBLE of kube-apiserver v1.29 for the calls the flow makes itself
  (node_bootstrap/kube_api.py), over HTTPS with client-certificate authentication as the admin
  kubeconfig of kubeadm uses it. It follows staging/src/k8s.io/apiserver/pkg/endpoints/handlers
  (create.go, update.go, get.go: 201 on create, 409 AlreadyExists, 404 NotFound, 409 Conflict on a stale
  resourceVersion, 422 Invalid when an update has none) and pkg/apis/core/validation/validation.go
  (ValidateSecret: DNS-1123 subdomain names, data keys [-._a-zA-Z0-9]+; namespaces must exist), with
  the `Status` bodies the API returns. A request without a client certificate is 401. Pods are the
  recorded objects of tests/fixtures/kube_pods (their README says where they come from), served per
  label selector with the selector parser of tests/fixtures/kube_api_double.py; `pod_stages` plays a
  start-up one stage per list call.
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

import base64
import binascii
import copy
import datetime
import ipaddress
import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.fixtures.kube_api_double import parse_selector, recorded_pod, selector_matches, status_body

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


# ------------------------------------------------------------------------------ certificates


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: x509.Name, key: Any, issuer: x509.Name, signer: Any, extensions: list[tuple[Any, bool]]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=4))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class ClusterPki:
    """kubeadm's layout in small: a cluster CA, the API server's certificate, the admin's client one."""

    ca_pem: bytes
    server_pem: bytes
    server_key_pem: bytes
    admin_pem: bytes
    admin_key_pem: bytes

    @classmethod
    def create(cls) -> ClusterPki:
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
        ca = _cert(
            ca_name, ca_key, ca_name, ca_key, [(x509.BasicConstraints(ca=True, path_length=None), True)]
        )
        server_key = _key()
        server = _cert(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            server_key,
            ca_name,
            ca_key,
            [
                (
                    x509.SubjectAlternativeName(
                        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("kubernetes")]
                    ),
                    False,
                ),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            ],
        )
        admin_key = _key()
        admin = _cert(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubeadm:cluster-admins"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin"),
                ]
            ),
            admin_key,
            ca_name,
            ca_key,
            [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
        )
        pem = serialization.Encoding.PEM
        return cls(
            ca.public_bytes(pem),
            server.public_bytes(pem),
            _pem_key(server_key),
            admin.public_bytes(pem),
            _pem_key(admin_key),
        )

    def kubeconfig(self, server: str) -> str:
        """What kubeadm's admin.conf looks like (make cluster points `server` at the public address)."""
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "llama",
                        "cluster": {"server": server, "certificate-authority-data": b64(self.ca_pem)},
                    }
                ],
                "contexts": [
                    {
                        "name": "kubernetes-admin@llama",
                        "context": {"cluster": "llama", "user": "kubernetes-admin"},
                    }
                ],
                "current-context": "kubernetes-admin@llama",
                "users": [
                    {
                        "name": "kubernetes-admin",
                        "user": {
                            "client-certificate-data": b64(self.admin_pem),
                            "client-key-data": b64(self.admin_key_pem),
                        },
                    }
                ],
            }
        )


# ------------------------------------------------------------------------------ kube-apiserver

DISCOVERY_NODE_GROUP = {
    "name": "node.k8s.io",
    "versions": [{"groupVersion": "node.k8s.io/v1", "version": "v1"}],
    "preferredVersion": {"groupVersion": "node.k8s.io/v1", "version": "v1"},
}
DISCOVERY_NODE_V1 = [
    {"name": "runtimeclasses", "singularName": "runtimeclass", "namespaced": False, "kind": "RuntimeClass",
     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}
]  # fmt: skip
# What `GET /api/v1` lists for the resources this double serves (kube-apiserver 1.29's entries).
DISCOVERY_V1 = [
    {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": verbs}
    for name, singular, namespaced, kind, verbs in (
        (
            "namespaces",
            "namespace",
            False,
            "Namespace",
            ["create", "delete", "get", "list", "patch", "update", "watch"],
        ),
        ("nodes", "node", False, "Node", ["get", "list", "watch"]),
        (
            "secrets",
            "secret",
            True,
            "Secret",
            ["create", "delete", "get", "list", "patch", "update", "watch"],
        ),
        ("pods", "pod", True, "Pod", ["get", "list", "watch"]),
    )
]


@dataclass
class Seen:
    method: str
    path: str
    user: str
    status: int


class KubeApiServerDouble:
    """`with KubeApiServerDouble(folder) as api:` -> `api.url`, `api.kubeconfig` (a file, 0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pki = ClusterPki.create()
        self._rv = 1000
        self.namespaces: dict[str, dict[str, Any]] = {}
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.namespaces[name] = self._meta({"name": name})
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        # API groups that CRDs added (as cert-manager's and kube-prometheus-stack's do): (group, version)
        # -> [(plural, kind)], announced by discovery like the built-in ones.
        self.crd_groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.nodes: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.pod_stages: list[list[dict[str, Any]]] = []  # popped one per pod list call
        self.seen: list[Seen] = []
        self.on_secret: Callable[[str, str, dict[str, bytes]], None] | None = None  # what kubelet would mount
        # (method, path) -> (code, reason, message), answered once instead of the real answer: a
        # failure injected at one call, as an overloaded or restarting API server gives it.
        self.refuse_next: dict[tuple[str, str], tuple[int, str, str]] = {}
        self._rv = 1000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        return {
            **meta,
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(self._rv),
            "creationTimestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    # -- the API
    def handle(
        self, method: str, target: str, user: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        if user == "system:anonymous":
            return 401, status_body(401, "Unauthorized", "Unauthorized")
        parts = url.path.strip("/").split("/")
        with self._lock:
            refused = self.refuse_next.pop((method, url.path), None)
            if refused is not None:
                return refused[0], status_body(*refused)
            if url.path == "/version" and method == "GET":
                return 200, {"major": "1", "minor": "29", "gitVersion": "v1.29.15", "platform": "linux/amd64"}
            if parts == ["api", "v1", "nodes"] and method == "GET":
                return 200, {
                    "kind": "NodeList",
                    "apiVersion": "v1",
                    "metadata": {},
                    "items": copy.deepcopy(self.nodes),
                }
            if parts == ["api"] and method == "GET":
                return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": urlsplit(self.url).netloc}]}  # fmt: skip
            if parts == ["apis"] and method == "GET":
                groups = [DISCOVERY_NODE_GROUP] + [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                     "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                    for g, v in self.crd_groups
                ]  # fmt: skip
                return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in self.crd_groups:
                resources = [{"name": plural, "singularName": plural[:-1], "namespaced": True, "kind": kind,
                              "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                             for plural, kind in self.crd_groups[(parts[1], parts[2])]]  # fmt: skip
                return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                             "groupVersion": f"{parts[1]}/{parts[2]}", "resources": resources}  # fmt: skip
            if parts == ["apis", "node.k8s.io", "v1"] and method == "GET":
                return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "node.k8s.io/v1",
                             "resources": DISCOVERY_NODE_V1}  # fmt: skip
            if (
                parts[:4] == ["apis", "node.k8s.io", "v1", "runtimeclasses"]
                and method == "GET"
                and len(parts) == 5
            ):
                # the chart looks the RuntimeClass up (created by a hook only where it is missing)
                return 404, status_body(404, "NotFound", f'runtimeclasses.node.k8s.io "{parts[4]}" not found')
            if parts == ["api", "v1"] and method == "GET":
                return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": DISCOVERY_V1}
            if parts == ["api", "v1", "namespaces"] and method == "POST":
                return self._create_namespace(body or {})
            if len(parts) == 4 and parts[:3] == ["api", "v1", "namespaces"] and method == "GET":
                if parts[3] not in self.namespaces:
                    return 404, status_body(404, "NotFound", f'namespaces "{parts[3]}" not found')
                return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": self.namespaces[parts[3]]}
            if len(parts) >= 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                name = parts[5] if len(parts) == 6 else None
                if method == "GET" and name is None:
                    return self._list("secrets", self.secrets, parts[3], query.get("labelSelector", [""])[0])
                if method == "DELETE" and name:
                    return self._delete("secrets", self.secrets, parts[3], name)
                return self._secrets(method, parts[3], name, body)
            if (
                len(parts) == 5
                and parts[:3] == ["api", "v1", "namespaces"]
                and parts[4] == "pods"
                and method == "GET"
            ):
                return self._pods(parts[3], query.get("labelSelector", [""])[0])
        return 404, status_body(404, "NotFound", "the server could not find the requested resource")

    def _create_namespace(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("metadata", {}).get("name", "")
        if body.get("kind") != "Namespace" or not _DNS1123_LABEL.match(name) or len(name) > 63:
            return 422, status_body(
                422, "Invalid", f'Namespace "{name}" is invalid: metadata.name: Invalid value: "{name}"'
            )
        if name in self.namespaces:
            return 409, status_body(409, "AlreadyExists", f'namespaces "{name}" already exists')
        self.namespaces[name] = self._meta({"name": name})
        return 201, {"kind": "Namespace", "apiVersion": "v1", "metadata": self.namespaces[name]}

    def _secrets(
        self, method: str, namespace: str, name: str | None, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        if method == "GET" and name:
            found = self.secrets.get((namespace, name))
            if found is None:
                return 404, status_body(404, "NotFound", f'secrets "{name}" not found')
            return 200, copy.deepcopy(found)
        if method not in ("POST", "PUT") or (method == "PUT") != bool(name):
            return 405, status_body(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        body = body or {}
        meta = body.get("metadata", {})
        new_name = meta.get("name", "")
        if meta.get("namespace", namespace) != namespace:
            return 400, status_body(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if namespace not in self.namespaces:
            return 404, status_body(404, "NotFound", f'namespaces "{namespace}" not found')
        problems = []
        if not _DNS1123_SUBDOMAIN.match(new_name) or len(new_name) > 253:
            problems.append(
                f'metadata.name: Invalid value: "{new_name}": a lowercase RFC 1123 subdomain must '
                "consist of lower case alphanumeric characters"
            )
        decoded: dict[str, bytes] = {}
        for key, value in (body.get("data") or {}).items():
            if not _SECRET_KEY.match(key):
                problems.append(
                    f'data[{key}]: Invalid value: "{key}": a valid config key must consist of '
                    "alphanumeric characters, '-', '_' or '.'"
                )
            try:
                decoded[key] = base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError):
                return 400, status_body(
                    400,
                    "BadRequest",
                    'Secret in version "v1" cannot be handled as a Secret: '
                    "illegal base64 data at input byte 0",
                )
        if method == "PUT" and new_name != name:
            problems.append(f'metadata.name: Invalid value: "{new_name}": field is immutable')
        if problems:
            return 422, status_body(422, "Invalid", f'Secret "{new_name}" is invalid: ' + ", ".join(problems))
        key = (namespace, new_name)
        if method == "POST":
            if key in self.secrets:
                return 409, status_body(409, "AlreadyExists", f'secrets "{new_name}" already exists')
            stored = {
                "kind": "Secret",
                "apiVersion": "v1",
                "type": body.get("type", "Opaque"),
                "metadata": self._meta({**meta, "namespace": namespace}),
                "data": body.get("data") or {},
            }
            self.secrets[key] = stored
            code = 201
        else:
            current = self.secrets.get(key)
            if current is None:
                return 404, status_body(404, "NotFound", f'secrets "{new_name}" not found')
            version = meta.get("resourceVersion")
            if not version:
                return 422, status_body(
                    422,
                    "Invalid",
                    f'Secret "{new_name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
                    "must be specified for an update",
                )
            if version != current["metadata"]["resourceVersion"]:
                return 409, status_body(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on secrets "{new_name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            if body.get("type", "Opaque") != current["type"]:
                return 422, status_body(
                    422,
                    "Invalid",
                    f'Secret "{new_name}" is invalid: type: Invalid value: "{body.get("type")}": '
                    "field is immutable",
                )
            self._rv += 1
            current["metadata"] = {
                **current["metadata"],
                "labels": meta.get("labels", {}),
                "resourceVersion": str(self._rv),
            }
            current["data"] = body.get("data") or {}
            stored, code = current, 200
        if self.on_secret is not None:
            self.on_secret(namespace, new_name, decoded)
        return code, copy.deepcopy(stored)

    def _list(
        self, resource: str, store: dict[tuple[str, str], dict[str, Any]], namespace: str, selector: str
    ) -> tuple[int, dict[str, Any]]:
        try:
            requirements = parse_selector(selector)
        except ValueError as exc:
            return 400, status_body(400, "BadRequest", str(exc))
        items = []
        for (ns, _), obj in sorted(store.items()):
            if ns == namespace and selector_matches(requirements, obj["metadata"].get("labels") or {}):
                item = copy.deepcopy(obj)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        kind = {"secrets": "SecretList"}[resource]
        return 200, {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _delete(
        self, resource: str, store: dict[tuple[str, str], dict[str, Any]], namespace: str, name: str
    ) -> tuple[int, dict[str, Any]]:
        if store.pop((namespace, name), None) is None:
            return 404, status_body(404, "NotFound", f'{resource} "{name}" not found')
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": resource}}  # fmt: skip

    def _pods(self, namespace: str, selector: str) -> tuple[int, dict[str, Any]]:
        try:
            requirements = parse_selector(selector)
        except ValueError as exc:
            return 400, status_body(400, "BadRequest", str(exc))
        if self.pod_stages:
            self.pods = self.pod_stages.pop(0)
        items = []
        for pod in copy.deepcopy(self.pods):
            pod.pop("kind", None)
            pod.pop("apiVersion", None)
            if pod["metadata"].get("namespace") == namespace and selector_matches(
                requirements, pod["metadata"].get("labels", {})
            ):
                items.append(pod)
        return 200, {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    # -- helpers for the tests
    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        found = self.secrets.get((namespace, name))
        return None if found is None else {k: base64.b64decode(v) for k, v in found["data"].items()}

    def add_ready_nodes(self, *names: str) -> None:
        self.nodes = [
            {"metadata": {"name": n}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
            for n in names
        ]

    def play_vllm_start(self) -> None:
        """The chart's vLLM pod from pulling to ready, one stage per pod list."""
        self.pod_stages = [[recorded_pod(stage)] for stage in ("pulling", "downloading", "loading", "ready")]

    # -- lifecycle
    def __enter__(self) -> KubeApiServerDouble:
        pki_dir = self.folder / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        for name, data in (
            ("ca.crt", self.pki.ca_pem),
            ("apiserver.crt", self.pki.server_pem),
            ("apiserver.key", self.pki.server_key_pem),
        ):
            (pki_dir / name).write_bytes(data)
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                if double._server is None:  # stopped: a kept-alive connection ends like a gone host's
                    self.close_connection = True
                    return
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                cert = self.connection.getpeercert()  # type: ignore[attr-defined]
                user = "system:anonymous"
                if cert:
                    user = dict(x[0] for x in cert["subject"]).get("commonName", "system:anonymous")
                try:
                    # server-side apply sends application/apply-patch+yaml (JSON is YAML too)
                    body = (yaml.safe_load(raw) if "yaml" in (self.headers.get("content-type") or "")
                            else json.loads(raw)) if raw else None  # fmt: skip
                    code, answer = double.handle(self.command, self.path, user, body)
                except ValueError:
                    code, answer = (
                        400,
                        status_body(400, "BadRequest", "invalid character in the request body"),
                    )
                double.seen.append(Seen(self.command, urlsplit(self.path).path, user, code))
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(pki_dir / "apiserver.crt", pki_dir / "apiserver.key")
        context.load_verify_locations(pki_dir / "ca.crt")
        context.verify_mode = (
            ssl.CERT_OPTIONAL
        )  # no certificate: anonymous, then 401 like anonymous-auth=false
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="kube-apiserver-double", daemon=True).start()
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        self.kubeconfig.write_text(self.pki.kubeconfig(self.url))
        self.kubeconfig.chmod(0o600)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
