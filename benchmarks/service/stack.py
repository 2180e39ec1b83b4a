"""The service under test: ``payment-service dev`` on a scratch database, on loopback.

``payment-service dev`` supervises the API (``payment-service serve``, one uvicorn process), the
worker, Tansu, OpenBao and the provider emulators. The harness finds those children in the process
tree (psutil) to sample their memory and to pause the worker for the relay-drain measurement; it
reaches the emulators' control API at the base URLs the launcher exported to the API and the
worker, read from ``<run dir>/stack.env``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from pydantic import SecretStr

from payment_service.auth import PrincipalKind, mint_token
from payment_service.config import AuthSettings
from payment_service.devstack import STACK_ENV_FILE, free_port, read_env_file
from payment_service.devstack.launcher import emulator_base_urls

ROOT = Path(__file__).resolve().parents[2]


def role_of(cmdline: list[str]) -> str | None:
    """``api``, ``worker``, ``emulator-<name>``, ``tansu``, ``openbao`` or None, from a command line."""
    joined = " ".join(cmdline)
    if "payment_service.cli" in joined or "payment-service" in joined:
        for role, word in (("api", "serve"), ("worker", "worker")):
            if word in cmdline:
                return role
        return None
    if "-m" in cmdline:
        module = cmdline[cmdline.index("-m") + 1] if cmdline.index("-m") + 1 < len(cmdline) else ""
        if module.startswith("emulators."):
            return "emulator-" + module.split(".", 1)[1]
    name = Path(cmdline[0]).name if cmdline else ""
    if "tansu" in name:
        return "tansu"
    if "bao" in name:
        return "openbao"
    return None


class Stack:
    """``payment-service dev`` on a scratch database, stopped with SIGINT."""

    def __init__(
        self,
        admin_dsn: str,
        redis_url: str,
        *,
        api_processes: int | None = None,
        pool_size: int | None = None,
        max_overflow: int = 2,
    ) -> None:
        self.admin_dsn = admin_dsn
        self.api_processes = api_processes
        self.pool_size = pool_size
        """Pooled connections per process (default: the service's); the smoke run, which shares
        Postgres' ``max_connections`` with the test suite, takes fewer."""
        self.max_overflow = max_overflow
        self.database = f"bench_service_{os.getpid()}"
        self.dsn = admin_dsn.rsplit("/", 1)[0] + "/" + self.database
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.run_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.log = self.run_dir / "dev.log"
        self.redis_url = redis_url
        self.proc: subprocess.Popen[bytes] | None = None
        self._auth: AuthSettings | None = None
        self._procs: dict[str, psutil.Process] = {}
        self._emulators: dict[str, str] = {}

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
        env.update(DATABASE_URL=self.dsn, REDIS_URL=self.redis_url, PAYMENT_LOG_LEVEL="WARNING")
        env["PAYMENT_DEV_ANY_PORTS"] = "1"  # free ports for broker and Vault: other stacks may be starting too
        if self.pool_size is not None:
            env.update(PAYMENT_DB__POOL_SIZE=str(self.pool_size), PAYMENT_DB__MAX_OVERFLOW=str(self.max_overflow))
        argv = [sys.executable, "-m", "payment_service.cli", "dev", "--port", str(self.port)]
        if self.api_processes:
            argv += ["--api-processes", str(self.api_processes)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--run-dir", str(self.run_dir)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        async with httpx.AsyncClient(trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the stack exited: {self.log.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.base}/health/ready", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError(f"the stack did not become ready: {self.log.read_text()[-3000:]}")

    async def stop(self) -> None:
        self.resume_worker()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(self.proc.wait, 60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    # ---- tokens and data ------------------------------------------------------------------------

    def token(self, subject: str = "bench-user") -> str:
        """A user JWT signed with the stack's dev secret (what ``payment-service token user`` mints)."""
        if self._auth is None:
            secret = read_env_file(self.run_dir / "dev.env")["PAYMENT_AUTH__HS256_SECRET"]
            self._auth = AuthSettings(hs256_secret=SecretStr(secret))
        return mint_token(self._auth, kind=PrincipalKind.user, subject=subject, ttl_seconds=7200)

    async def fund(self, users: list[str], *, rubles: int) -> None:
        """Fund wallets through the wallet service (a support credit), as the service itself would."""
        from payment_service.config import Settings
        from payment_service.db import create_engine, create_sessionmaker, transaction
        from payment_service.kit.clock import SystemClock
        from payment_service.kit.money import Money
        from payment_service.wallet import service as wallet_service

        settings = Settings(_env_file=None)
        settings.db.url = SecretStr(self.dsn)
        engine = create_engine(settings.db, application_name="bench-fund")
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                for user in users:
                    await wallet_service.adjust(
                        session,
                        user_id=user,
                        amount=Money(rubles * 100, "RUB"),
                        credit=True,
                        note="benchmark donor",
                        operator="bench",
                        idempotency_key=f"bench:fund:{user}",
                        settings=settings.wallet,
                        now=SystemClock().now(),
                    )
        finally:
            await engine.dispose()

    # ---- the process tree -----------------------------------------------------------------------

    def processes(self) -> dict[str, psutil.Process]:
        """The stack's children by role (re-discovered when one was restarted)."""
        if self.proc is None:
            return {}
        alive = {role: p for role, p in self._procs.items() if p.is_running()}
        if len(alive) == len(self._procs) and {"api", "worker"} <= alive.keys():
            return alive
        found: dict[str, psutil.Process] = {}
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    role = role_of(child.cmdline())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if role is not None:
                    n = 1
                    while (f"{role}-{n}" if n > 1 else role) in found:  # several API processes: api, api-2, …
                        n += 1
                    found[f"{role}-{n}" if n > 1 else role] = child
        except psutil.NoSuchProcess:  # a process vanished while the tree was read (a child restarting)
            return found
        self._procs = found
        return found

    def emulator_url(self, provider: str) -> str:
        """Origin of an emulator (``http://127.0.0.1:<port>``), from the base URL in ``stack.env``."""
        if provider not in self._emulators:
            self._emulators = emulator_base_urls(read_env_file(self.run_dir / STACK_ENV_FILE))
        if provider not in self._emulators:
            raise RuntimeError(f"no {provider} emulator in {self.run_dir / STACK_ENV_FILE}")
        return self._emulators[provider]

    def suspend_worker(self) -> None:
        """SIGSTOP the worker; waits up to 30 s for it to be found (the launcher may be restarting a
        child, and the process tree is read while it changes)."""
        deadline = time.monotonic() + 30
        while (worker := self.processes().get("worker")) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker process under the launcher: {sorted(self.processes())}")
            time.sleep(0.2)
        worker.suspend()

    def resume_worker(self) -> None:
        worker = self._procs.get("worker")
        if worker is not None:
            try:
                if worker.status() == psutil.STATUS_STOPPED:
                    worker.resume()
            except psutil.NoSuchProcess:
                pass

    def rss(self) -> dict[str, int]:
        """Resident memory (bytes) of each child process by role."""
        out: dict[str, int] = {}
        for role, proc in self.processes().items():
            try:
                out[role] = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return out

    async def emulator(self, provider: str, method: str, path: str, body: Any = None) -> Any:
        """Call an emulator's control API (``/_emulator/...``)."""
        async with httpx.AsyncClient(base_url=self.emulator_url(provider), trust_env=False, timeout=30) as client:
            response = await client.request(method, path, json=body)
            response.raise_for_status()
            return response.json()
