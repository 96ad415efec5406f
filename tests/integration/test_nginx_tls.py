"""HTTPS at the edge: the UI image's HTTPS config (ui/nginx/tls/default.conf.template, selected by
chat-ui.tls.enabled) run by Debian's real nginx in front of real chat-api, with a certificate from a
test CA made here. The UI and /v1 (the official openai client) answer over verified TLS with HSTS;
plain HTTP only redirects; a renewed certificate is served without a restart."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures.stack import LOG_DIR, ChatApiServer
from tests.fixtures.test_ca import TestCa
from tests.fixtures.ui_nginx import TlsFiles, UiNginx, skip_without_nginx, ui_nginx
from tests.integration.doubles import SlowUpstreamDouble

pytestmark = pytest.mark.integration

HOST = "localhost"  # resolves here without DNS; the certificate names it like tls.host would


@dataclass
class Edge:
    nginx: UiNginx
    ca: TestCa
    tls_dir: Path


@pytest.fixture
def edge(chat_api_factory: Callable[..., ChatApiServer], tmp_path: Path) -> Iterator[Edge]:
    skip_without_nginx()
    ca = TestCa.create()
    cert, key, _ = ca.issue(HOST)
    # The double answers /v1/models like vLLM; chat-api in front of it is the real one.
    with SlowUpstreamDouble("stall_before_first_token") as upstream:
        api = chat_api_factory(upstream_url=upstream.url, env={"CHAT_API_RATE_LIMIT_PER_MINUTE": "0"})
        html = tmp_path / "html"
        html.mkdir()
        (html / "index.html").write_text("<html>chat</html>")
        tls = TlsFiles(cert_pem=cert, key_pem=key, host=HOST)
        with ui_nginx(tmp_path / "nginx", html, api.base_url, f"localhost {HOST}", LOG_DIR, tls=tls) as nginx:
            yield Edge(nginx, ca, tmp_path / "nginx" / "tls")


def served_certificate(port: int, server_name: str, context: ssl.SSLContext) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert()  # type: ignore[return-value]


def test_the_ui_and_v1_answer_over_verified_https_with_hsts(edge: Edge) -> None:
    with httpx.Client(verify=edge.ca.client_context(), timeout=10) as client:
        page = client.get(f"{edge.nginx.url}/")
        assert page.status_code == 200 and "chat" in page.text
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        config = client.get(f"{edge.nginx.url}/config.json")
        assert config.status_code == 200 and config.headers["strict-transport-security"]
        # An error from chat-api carries HSTS too (add_header ... always).
        missing = client.post(f"{edge.nginx.url}/api/chat", json={})
        assert missing.status_code == 400 and missing.headers["strict-transport-security"]

    # The official OpenAI client, verifying the certificate against the team's CA.
    with httpx.Client(verify=edge.ca.client_context(), timeout=10) as http_client:
        client = openai.OpenAI(base_url=f"{edge.nginx.url}/v1", api_key="unused", http_client=http_client)
        assert [m.id for m in client.models.list()] == ["tiny-llama"]


def test_a_client_that_does_not_trust_the_ca_is_refused(edge: Edge) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{edge.nginx.url}/", verify=ssl.create_default_context(), timeout=10)


def test_plain_http_only_redirects_to_https(edge: Edge) -> None:
    plain = f"http://127.0.0.1:{edge.nginx.port}"
    https = f"https://{HOST}:{edge.nginx.https_port}"
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        requests = [("GET", "/"), ("GET", "/config.json"), ("GET", "/v1/models?n=2"), ("POST", "/api/chat")]
        for method, path in requests:
            answer = client.request(method, f"{plain}{path}", headers={"Host": HOST})
            # 308 keeps the method and body: a POST is not turned into a GET on the way.
            assert answer.status_code == 308, (method, path, answer.status_code)
            assert answer.headers["location"] == f"{https}{path}"
            assert "tiny-llama" not in answer.text and "apiBaseUrl" not in answer.text
        # kubelet's probe stays on plain HTTP.
        assert client.get(f"{plain}/healthz").text == "ok\n"
        # A name that is not ours gets nothing, not even a redirect (DNS rebinding).
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{plain}/", headers={"Host": "rebind.attacker.example"})
    # The redirect followed by a client that trusts the CA ends at the page.
    with httpx.Client(verify=edge.ca.client_context(), timeout=10, follow_redirects=True) as client:
        final = client.get(f"http://{HOST}:{edge.nginx.port}/config.json")
        assert final.status_code == 200 and str(final.url).startswith("https://")


def test_a_name_that_is_not_ours_gets_no_certificate(edge: Edge) -> None:
    context = edge.ca.client_context()
    context.check_hostname = False
    with pytest.raises(ssl.SSLError, match=r"UNRECOGNIZED_NAME|unrecognized name|alert"):
        served_certificate(edge.nginx.https_port or 0, "rebind.attacker.example", context)


def test_a_renewed_certificate_is_served_without_a_restart(edge: Edge) -> None:
    port = edge.nginx.https_port or 0
    first = served_certificate(port, HOST, edge.ca.client_context())
    cert, key, leaf = edge.ca.issue(HOST)
    # kubelet swaps a Secret volume's files atomically (a symlinked folder); replace them the same way.
    for name, data in (("tls.key", key), ("tls.crt", cert)):
        staged = edge.tls_dir / f".{name}.new"
        staged.write_bytes(data)
        staged.replace(edge.tls_dir / name)
    time.sleep(0.1)
    second = served_certificate(port, HOST, edge.ca.client_context())
    assert first["serialNumber"] != second["serialNumber"]
    assert int(second["serialNumber"], 16) == leaf.serial_number


class AcmeSolverDouble:
    """A double of cert-manager's HTTP-01 solver pod (cert-manager v1.19,
    pkg/issuer/acme/http/solver/solver.go, HTTP01Solver.Listen): it answers GET
    /.well-known/acme-challenge/<token> with the key authorization only when the Host (port cut off)
    is its domain and the token is its own, 404 otherwise. A real solver needs a cert-manager
    controller and an ACME server, which cannot run here."""

    def __init__(self, domain: str, token: str, key: str) -> None:
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = self.headers.get("Host", "").split(":")[0]
                base, _, token = self.path.rpartition("/")
                double.seen.append((host, self.path))
                if base == "/.well-known/acme-challenge" and host == domain and token == double.token:
                    body = key.encode()
                    self.send_response(200)
                else:
                    body = b"404 page not found\n"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.token = token
        self.seen: list[tuple[str, str]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cert_manager_http01_reaches_the_solver_through_port_80_before_any_certificate_exists(
    chat_api_factory: Callable[..., ChatApiServer], tmp_path: Path
) -> None:
    """The ACME flow of values/aws-t4.yaml without an ingress controller: nginx starts with no
    certificate yet (the Secret volume is optional), Let's Encrypt's GET on port 80 reaches
    cert-manager's solver with the right Host, everything else still redirects, and once
    cert-manager writes the Secret, HTTPS works without a restart."""
    skip_without_nginx()
    token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
    solver = AcmeSolverDouble(HOST, token, f"{token}.thumbprint")
    ca = TestCa.create()
    try:
        with SlowUpstreamDouble("stall_before_first_token") as upstream:
            api = chat_api_factory(upstream_url=upstream.url)
            html = tmp_path / "html"
            html.mkdir()
            (html / "index.html").write_text("<html>chat</html>")
            not_yet = TlsFiles(cert_pem=b"", key_pem=b"", host=HOST, acme_solver=solver.url)
            with ui_nginx(tmp_path / "nginx", html, api.base_url, HOST, LOG_DIR, tls=not_yet) as nginx:
                plain = f"http://127.0.0.1:{nginx.port}"
                challenge = f"/.well-known/acme-challenge/{token}"
                answer = httpx.get(f"{plain}{challenge}", headers={"Host": HOST}, timeout=10)
                assert (answer.status_code, answer.text) == (200, f"{token}.thumbprint")
                assert solver.seen == [(HOST, challenge)], "the solver sees the name being validated"
                # Another token is the solver's 404, not a redirect and not the page.
                other = httpx.get(f"{plain}/.well-known/acme-challenge/x", headers={"Host": HOST}, timeout=10)
                assert other.status_code == 404
                assert httpx.get(f"{plain}/", headers={"Host": HOST}, timeout=10).status_code == 308
                # No certificate yet: HTTPS fails the handshake, nginx keeps running.
                with pytest.raises(ssl.SSLError):
                    served_certificate(nginx.https_port or 0, HOST, ca.client_context())
                # cert-manager writes the Secret; the kubelet updates the optional volume.
                cert, key, leaf = ca.issue(HOST)
                tls_dir = tmp_path / "nginx" / "tls"
                (tls_dir / ".tls.key").write_bytes(key)
                (tls_dir / ".tls.key").replace(tls_dir / "tls.key")
                (tls_dir / ".tls.crt").write_bytes(cert)
                (tls_dir / ".tls.crt").replace(tls_dir / "tls.crt")
                served = served_certificate(nginx.https_port or 0, HOST, ca.client_context())
                assert int(served["serialNumber"], 16) == leaf.serial_number
    finally:
        solver.close()
