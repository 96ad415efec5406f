"""A real Helm chart repository on loopback (index.yaml + packaged charts over HTTP, as
prometheus-community's GitHub Pages serve theirs), holding TEST DOUBLE charts that stand for the
third-party charts `make platform` pins (no internet here): the same names and versions, one
ConfigMap each. Packaging, indexing and pulling all go through Helm's own code (helm-python-sdk).
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHARTS = (
    ("kube-prometheus-stack", "88.6.4"),
    ("cert-manager", "v1.19.1"),
    ("kube-prometheus-stack", "88.5.0"),
)


def write_double_chart(root: Path, name: str, version: str) -> Path:
    chart = root / f"{name}-{version}"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: {version}\n"
        f"description: TEST DOUBLE of the upstream {name} chart (tests/platform/chart_repo.py)\n"
    )
    (chart / "values.yaml").write_text("{}\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-double\n"
        "  namespace: {{ .Release.Namespace }}\ndata:\n  chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n"
    )
    return chart


class ChartRepository:
    """`with ChartRepository(folder) as repo:` -> `repo.url` serves index.yaml and the archives."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.served = folder / "served"

    def __enter__(self) -> ChartRepository:
        import helm_python

        self.served.mkdir(parents=True, exist_ok=True)
        for name, version in CHARTS:
            helm_python.package(
                write_double_chart(self.folder / "src", name, version), destination=self.served
            )
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(self.served))
        handler.log_message = lambda *args: None  # type: ignore[method-assign]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        helm_python.repo_index_generate(self.served, base_url=self.url)
        threading.Thread(target=self._server.serve_forever, name="chart-repo", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
