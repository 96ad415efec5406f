"""SSH to one node over paramiko: verified host keys only, bounded connect retries, timeouts.

Host keys come from a known_hosts file built from a trusted source (the EC2 console output or
keys injected by the caller) and RejectPolicy refuses anything else; AutoAddPolicy is never used.
"""

from __future__ import annotations

import io
import select
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .errors import HostKeyError, StepError, UnreachableError
from .inventory import Node
from .nodelog import NodeLog
from .retry import RetryPolicy, retry

# Transient: the node is booting, sshd is restarting, the network drops a packet.
_TRANSIENT = (OSError, socket.timeout, EOFError, paramiko.ssh_exception.SSHException)


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


class _Transient(Exception):
    """Wraps a transient connect error so that only those are retried."""


class NodeSession:
    def __init__(
        self,
        node: Node,
        user: str,
        key_path: Path,
        known_hosts: Path,
        log: NodeLog,
        connect_policy: RetryPolicy,
        connect_timeout: float = 10.0,
        keepalive_s: int = 15,
        port: int = 22,
    ) -> None:
        self.node = node
        self.user = user
        self.key_path = key_path
        self.known_hosts = known_hosts
        self.log = log
        self.connect_policy = connect_policy
        self.connect_timeout = connect_timeout
        self.keepalive_s = keepalive_s
        self.port = port
        self._client: paramiko.SSHClient | None = None

    @property
    def target(self) -> str:
        return f"{self.user}@{self.node.public_ip}:{self.port}"

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        started = time.monotonic()

        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            self.log.write(
                f"ssh {self.target}: attempt {attempt}/{self.connect_policy.attempts} failed "
                f"({error.__cause__ or error}); next try in {wait:.1f} s"
            )

        try:
            self._client = retry(self._connect_once, self.connect_policy, (_Transient,), on_retry)
        except _Transient as error:
            raise UnreachableError(
                f"node {self.node.name} ({self.target}) did not answer SSH after "
                f"{self.connect_policy.attempts} attempts in {time.monotonic() - started:.0f} s: "
                f"{error.__cause__}. Fix: check the instance is running, that your address is in "
                "admin_cidrs (terraform/terraform.tfvars), and that port 22 is reachable from here."
            ) from error.__cause__
        self.log.write(f"ssh {self.target}: connected, host key verified against {self.known_hosts}")

    def _connect_once(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.node.public_ip,
                port=self.port,
                username=self.user,
                key_filename=str(self.key_path),
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HostKeyError(
                f"node {self.node.name} ({self.target}) presented a {error.key.get_name()} host key "
                f"{error.key.fingerprint} that differs from the verified one in {self.known_hosts} "
                f"({error.expected_key.fingerprint}). Refusing to connect: this is either a "
                "man-in-the-middle or a rebuilt instance. Fix: if the instance was replaced, remove "
                "its line from the known_hosts file and re-run so the key is read again from the "
                "EC2 console output."
            ) from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise StepError(
                f"node {self.node.name} ({self.target}) refused the key {self.key_path}: {error}. "
                "Fix: give the private half of terraform's ssh_public_key: make cluster SSH_KEY=PATH."
            ) from None
        except paramiko.SSHException as error:
            client.close()
            if "not found in known_hosts" in str(error):
                raise HostKeyError(
                    f"node {self.node.name} ({self.target}) has no verified host key in "
                    f"{self.known_hosts}. Refusing to connect (unknown keys are never accepted). "
                    "Fix: let the bootstrap read the keys from the EC2 console output (omit "
                    "--known-hosts), or add the node's key to that file after checking it."
                ) from None
            raise _Transient() from error
        except _TRANSIENT as error:
            client.close()
            raise _Transient() from error
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(self.keepalive_s)
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- commands ------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        sudo: bool = True,
        stdin: bytes | None = None,
        timeout: float = 600.0,
        secret_output: bool = False,
        check: bool = True,
    ) -> Result:
        """Run one command. Secrets go in `stdin`, never in `command` (argv is visible in ps).

        secret_output: stdout is returned but never logged (the join command, admin.conf).
        """
        if self._client is None:
            raise StepError(f"node {self.node.name}: not connected")
        if sudo and self.user != "root":
            command = f"sudo -n -- {command}"
        self.log.write(f"$ {command}" + (" (secret input on stdin)" if stdin else ""))
        transport = self._client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=self.connect_timeout)
        channel.settimeout(timeout)
        channel.exec_command(command)
        if stdin is not None:
            channel.sendall(stdin)
        channel.shutdown_write()
        out, err = self._collect(channel, command, timeout, secret_output)
        code = channel.recv_exit_status()
        channel.close()
        self.log.write(f"exit {code}")
        if check and code != 0:
            shown = "(output withheld: it holds secrets)" if secret_output else _tail(out + err)
            raise StepError(f"node {self.node.name}: `{command}` exited {code}; last output:\n{shown}")
        return Result(code, out, err)

    def _collect(
        self, channel: paramiko.Channel, command: str, timeout: float, secret: bool
    ) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        out, err = io.StringIO(), io.StringIO()
        pending = {"out": "", "err": ""}

        def emit(kind: str, data: bytes, sink: io.StringIO) -> None:
            text = data.decode("utf-8", errors="replace")
            sink.write(text)
            if secret and kind == "out":
                return
            pending[kind] += text
            *lines, pending[kind] = pending[kind].split("\n")
            for line in lines:
                self.log.write(("  " if kind == "out" else "  ! ") + line)

        while True:
            if time.monotonic() > deadline:
                channel.close()
                raise StepError(
                    f"node {self.node.name}: `{command}` did not finish within {timeout:.0f} s; "
                    f"see {self.log.path}"
                )
            select.select([channel], [], [], 1.0)
            while channel.recv_ready():
                emit("out", channel.recv(65536), out)
            while channel.recv_stderr_ready():
                emit("err", channel.recv_stderr(65536), err)
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
        for kind in ("out", "err"):
            if pending[kind] and not (secret and kind == "out"):
                self.log.write(("  " if kind == "out" else "  ! ") + pending[kind])
        return out.getvalue(), err.getvalue()

    def put(self, path: str, content: bytes, mode: int = 0o600) -> None:
        """Write a file as the SSH user; created with `mode` before any byte is written."""
        if self._client is None:
            raise StepError(f"node {self.node.name}: not connected")
        with self._client.open_sftp() as sftp:
            with sftp.open(path, "wb") as handle:
                handle.chmod(mode)
                handle.write(content)
        self.log.write(f"uploaded {path} ({len(content)} bytes, mode {mode:o})")

    def mkdir_private(self, path: str) -> None:
        self.run(f"install -d -m 0700 {shlex.quote(path)}", sudo=False)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
