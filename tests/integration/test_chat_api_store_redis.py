"""The shared store as the chart runs it (chat-api.store.redis): the rendered redis.conf and the init
step that writes the password, run with Debian's real redis-server. Only a client with the password
gets in, writes survive a restart (append-only file), and what an intruder would use is gone."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from scripts.local_run.process import ManagedProcess, free_port
from tests.chart import cases
from tests.fixtures.stack import LOG_DIR

pytestmark = pytest.mark.integration

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def rendered_store() -> dict[str, Any]:
    manifests = cases.render_with((), {"chat-api": {"store": {"redis": {"enabled": True}}}})
    pod = cases.find(manifests, "StatefulSet", "llama-chat-api-redis")["spec"]["template"]["spec"]
    api = cases.find(manifests, "Deployment", "llama-chat-api")["spec"]["template"]["spec"]["containers"][0]
    secret = cases.find(manifests, "Secret", "llama-chat-api-redis")
    return {
        "conf": cases.find(manifests, "ConfigMap", "llama-chat-api-redis")["data"]["redis.conf"],
        "password": base64.b64decode(
            cases.find(manifests, "Secret", "llama-chat-api-redis")["data"]["password"]
        ),
        "write_auth": next(c for c in pod["initContainers"] if c["name"] == "write-auth")["command"],
        "server": pod["containers"][0]["command"],
        # chat-api reads the URL as a file from the Secret (CHAT_API_REDIS_URL_FILE).
        "url_file": next(e["value"] for e in api["env"] if e["name"] == "CHAT_API_REDIS_URL_FILE"),
        "url": base64.b64decode(secret["data"]["url"]).decode(),
    }


def start(store: dict[str, Any], root: Path, port: int) -> ManagedProcess:
    """The pod's two steps, with its paths under `root`: write-auth, then redis-server on its config."""
    moves = {"/run/redis-secret": root / "secret", "/run/redis-auth": root / "auth", "/data": root / "data",
             "/etc/redis": root / "config"}  # fmt: skip
    for path in moves.values():
        path.mkdir(parents=True, exist_ok=True)
    (root / "secret" / "password").write_bytes(store["password"])

    def moved(text: str) -> str:
        for old, new in moves.items():
            text = text.replace(old, str(new))
        return text

    assert store["write_auth"][:2] == ["sh", "-c"]
    subprocess.run(["sh", "-c", moved(store["write_auth"][2])], check=True)
    conf = moved(store["conf"]).replace("port 6379", f"port {port}").replace("bind * -::*", "bind 127.0.0.1")
    (root / "config" / "redis.conf").write_text(conf)
    argv = [REDIS_SERVER, *[moved(a) for a in store["server"][1:]]]
    proc = ManagedProcess(name=f"redis:{port}", argv=argv, log_path=LOG_DIR / f"redis-{port}.log").start()

    def ready() -> bool:
        try:
            redis.Redis(port=port, password=store["password"].decode()).ping()
            return True
        except redis.RedisError:
            return False

    proc.wait_ready(ready, timeout=20, interval=0.2)
    return proc


def test_the_store_wants_its_password_keeps_writes_and_refuses_what_chat_api_never_sends(
    tmp_path: Path,
) -> None:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    store = rendered_store()
    password = store["password"].decode()
    port = free_port()
    # The auth file holds the password and nobody but its owner may read it.
    proc = start(store, tmp_path, port)
    try:
        assert (tmp_path / "auth" / "auth.conf").stat().st_mode & 0o077 == 0
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).set("k", "v")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        # The URL chat-api reads from the Secret, pointed at this server.
        assert store["url_file"] == "/etc/chat-api/store/url"
        url = store["url"].replace("llama-chat-api-redis:6379", f"127.0.0.1:{port}")
        assert f":{password}@" in url
        client = redis.Redis.from_url(url)
        client.set("person:alice:key", "revoked")
        for command in ("FLUSHALL", "CONFIG GET requirepass", "DEBUG SLEEP 0"):
            with pytest.raises(redis.ResponseError, match="unknown command"):
                client.execute_command(command)
        assert client.get("person:alice:key") == b"revoked"
    finally:
        proc.stop()
    assert any((tmp_path / "data").rglob("*.aof")), "writes go to the append-only file"
    # A restart (a rescheduled pod on the same volume) finds the key again.
    proc = start(store, tmp_path, port)
    try:
        assert redis.Redis(port=port, password=password).get("person:alice:key") == b"revoked"
    finally:
        proc.stop()
