"""The dev launcher (``payment-service dev``) and its process helpers, with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import redis
from pydantic import SecretStr, ValidationError

from payment_service.config import Settings
from payment_service.devstack import (
    EmbeddedRedis,
    OpenBao,
    dev_provider_credentials,
    embedded_postgres,
    ensure_database,
    extra_processes,
    free_port,
    load_or_create_dev_env,
    processes,
    read_env_file,
    spawn,
    stop_processes,
)
from payment_service.devstack.launcher import emulator_base_urls
from payment_service.providers.settings import SberSettings

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("PAYMENT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PAYMENT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive (zombies count as gone) after waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


class TestFreePort:
    def test_ports_are_taken_below_the_range_the_kernel_gives_outgoing_connections(self) -> None:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        ports = {free_port() for _ in range(20)}
        if ephemeral - 20000 >= 1000:  # room below the range: none of them is an ephemeral port
            assert all(20000 <= port < ephemeral for port in ports)
        for port in ports:  # and each is free to bind
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))

    def test_a_port_is_never_handed_out_twice_even_before_anyone_binds_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        picks = iter([24_000, 24_000, 24_000, 24_001])  # the random choice falls on the same port again

        class Same:
            def randrange(self, low: int, high: int) -> int:
                return next(picks)

        monkeypatch.setattr(processes, "_HANDED_OUT", set())
        monkeypatch.setattr(processes, "_RANDOM", Same())
        monkeypatch.setattr(processes, "_ephemeral_start", lambda: 32_768)

        first, second = free_port(), free_port()  # nothing has bound the first one yet

        assert (first, second) == (24_000, 24_001)


class TestStopProcesses:
    def test_kills_the_whole_group_even_when_sigterm_is_ignored(self) -> None:
        stubborn = (
            "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); time.sleep(60)"
        )
        proc = spawn([sys.executable, "-c", stubborn], out=subprocess.PIPE)
        assert proc.stdout is not None
        grandchild = int(proc.stdout.readline())

        started = time.monotonic()
        stop_processes([(proc, 0.5)])

        assert time.monotonic() - started < 5
        assert proc.returncode == -signal.SIGKILL
        assert gone([proc.pid, grandchild], timeout=5) == []


class TestDieWithParent:
    def test_a_broker_does_not_outlive_a_killed_parent(self) -> None:
        parent_code = (
            "import time; from payment_service.devstack import Tansu; "
            "print(Tansu().start().proc.pid, flush=True); time.sleep(60)"
        )
        parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, cwd=ROOT)
        assert parent.stdout is not None
        broker = int(parent.stdout.readline())
        assert gone([broker], timeout=0) == [broker]

        parent.kill()
        parent.wait()

        assert gone([broker], timeout=5) == []


class TestDevFiles:
    def test_dev_secret_is_generated_once_and_private(self, tmp_path: Path) -> None:
        first = load_or_create_dev_env(tmp_path)
        second = load_or_create_dev_env(tmp_path)

        assert first == second
        assert len(first["PAYMENT_AUTH__HS256_SECRET"]) >= 32
        assert read_env_file(tmp_path / "dev.env") == first
        assert stat.S_IMODE((tmp_path / "dev.env").stat().st_mode) == 0o600

    def test_dev_provider_credentials_are_random_for_every_provider(self) -> None:
        one, two = dev_provider_credentials(), dev_provider_credentials()

        assert set(one) == {"yookassa", "tbank", "sber", "mobile", "yookassa_payouts", "bank_transfer", "atol", "qiwi"}
        assert set(one["yookassa"]) == {"shop_id", "secret_key"}
        assert set(one["tbank"]) == {"terminal_key", "password"}
        assert set(one["sber"]) == {"user_name", "password", "callback_secret"}
        assert set(one["atol"]) == {"login", "password", "group_code", "inn"}
        assert one["qiwi"] == {"enabled": False}
        assert one["yookassa"]["secret_key"] != two["yookassa"]["secret_key"]

    def test_every_emulator_is_a_separate_process_fed_from_vault(self, openbao: OpenBao) -> None:
        creds = dev_provider_credentials()
        openbao.put_kv("payment-service/providers", creds)
        settings = Settings(_env_file=None)
        settings.vault.addr = openbao.addr
        settings.vault.token = SecretStr(openbao.root_token)

        specs = extra_processes(settings)

        assert {s.name for s in specs} == {
            "emulator-yookassa",
            "emulator-tbank",
            "emulator-sber",
            "emulator-mobile",
            "emulator-yookassa_payouts",
            "emulator-bank_transfer",
            "emulator-catalog",
        }
        yookassa = next(s for s in specs if s.name == "emulator-yookassa")
        assert yookassa.argv[1:3] == ["-m", "emulators.yookassa"]
        assert json.loads(yookassa.env["EMULATOR_CREDENTIALS"]) == creds["yookassa"]
        assert "secret" not in " ".join(yookassa.argv)  # credentials never on the command line
        assert yookassa.exports["PAYMENT_PROVIDERS__YOOKASSA__BASE_URL"].endswith("/v3")
        catalog = next(s for s in specs if s.name == "emulator-catalog")
        assert catalog.argv[1:3] == ["-m", "emulators.catalog"]
        assert catalog.exports["PAYMENT_CATALOG__BASE_URL"].startswith("http://127.0.0.1:")
        # the exports name every emulator's origin (what a harness reads back from stack.env)
        origins = emulator_base_urls({k: v for s in specs for k, v in s.exports.items()})
        assert set(origins) == {s.name.removeprefix("emulator-") for s in specs}
        port = yookassa.argv[yookassa.argv.index("--port") + 1]
        assert origins["yookassa"] == f"http://127.0.0.1:{port}"
        page = next(s for s in specs if s.name == "emulator-sber").exports["PAYMENT_PROVIDERS__SBER__PAYMENT_PAGE_URL"]
        assert page.startswith(origins["sber"] + "/payment/merchants/")  # where the emulator's formUrl points
        assert SberSettings(payment_page_url=page).payment_page_url == page

    @pytest.mark.parametrize(
        "page",
        [
            "https://securepayments.sberbank.ru/payment/merchants/shop/payment_ru.html",  # no order id
            "https://securepayments.sberbank.ru/payment/merchants/shop/payment_ru.html?mdOrder={md_order}&x={md_order}",
            "/payment/merchants/shop/payment_ru.html?mdOrder={md_order}",  # relative
            "javascript:alert(1)//{md_order}",
        ],
    )
    def test_a_sber_page_address_is_an_absolute_url_with_one_order_id(self, page: str) -> None:
        with pytest.raises(ValidationError, match=r"md_order|absolute"):
            SberSettings(payment_page_url=page)


class TestEmbeddedRedis:
    def test_starts_answers_and_stops(self, tmp_path: Path) -> None:
        server = EmbeddedRedis(data_dir=tmp_path).start()
        pid = server.proc.pid if server.proc else 0
        try:
            client = redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()
        finally:
            server.stop()

        assert gone([pid], timeout=5) == []


class TestEmbeddedPostgres:
    def test_starts_creates_the_database_and_stops(self, tmp_path: Path) -> None:
        url, stop = embedded_postgres(tmp_path / "pgdata")
        try:
            ensure_database(url)

            async def current_database() -> str:
                conn = await asyncpg.connect(url)
                try:
                    return str(await conn.fetchval("SELECT current_database()"))
                finally:
                    await conn.close()

            assert asyncio.run(current_database()) == "payment_service"
        finally:
            stop()

        assert not ensure_database_answers(url)


def ensure_database_answers(url: str) -> bool:
    try:
        ensure_database(url, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return False
    return True


class TestEnsureDatabase:
    def test_creates_a_missing_database_once(self, dev_database: str) -> None:
        ensure_database(dev_database)
        ensure_database(dev_database)

        assert ensure_database_answers(dev_database)


@pytest.fixture
def dev_database() -> Iterator[str]:
    name = f"payment_dev_{uuid.uuid4().hex[:8]}"
    yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"  # `dev` creates it

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def wait_until(predicate: object, timeout: float, what: str, log: Path) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s; launcher output:\n{log.read_text()[-4000:]}")


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class TestDevLauncher:
    def test_runs_the_whole_stack_restarts_a_dead_child_and_sigint_leaves_no_process(
        self, tmp_path: Path, dev_database: str
    ) -> None:
        port = free_port()
        run_dir = tmp_path / "run"
        log = tmp_path / "dev.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
        env.update(DATABASE_URL=dev_database, REDIS_URL=f"{REDIS_URL}/14", PYTHONUNBUFFERED="1")
        with log.open("wb") as out:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "payment_service.cli", "dev", "--port", str(port), "--run-dir", str(run_dir)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        pids: list[int] = []
        try:
            # Ready: Postgres (created + migrated), Redis, Tansu and OpenBao all answer.
            wait_until(lambda: ready(f"{base}/health/ready"), 60, "not ready", log)
            checks = httpx.get(f"{base}/health/ready").json()["checks"]
            assert all(c["ok"] for c in checks.values()), checks
            wait_until(lambda: "payment-service token user" in log.read_text(), 10, "no banner", log)
            banner = log.read_text()
            for path in ("/docs", "/openapi.json", "/metrics", "/health/live", "/health/ready"):
                assert f"{base}{path}" in banner

            children = psutil.Process(launcher.pid).children(recursive=True)
            pids = [p.pid for p in children]
            assert len(pids) >= 8  # Tansu, OpenBao, API, worker, four provider emulators

            # A token from `payment-service token` (reading the dev env file) works against the server.
            token = subprocess.run(
                [sys.executable, "-m", "payment_service.cli", "token", "user", "user-7"],
                env={**env, **read_env_file(run_dir / "dev.env")},
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
            me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
            assert me.json()["subject"] == "user-7"

            # Vault is seeded with dev provider credentials; Transit is enabled.
            stack = read_env_file(run_dir / "stack.env")
            assert stat.S_IMODE((run_dir / "stack.env").stat().st_mode) == 0o600
            # ... with the emulators' base URLs the API and the worker were given
            assert {k for k in stack if k.startswith("PAYMENT_PROVIDERS__") and k.endswith("__BASE_URL")} == {
                f"PAYMENT_PROVIDERS__{name}__BASE_URL" for name in ("YOOKASSA", "TBANK", "SBER", "MOBILE")
            }
            for origin in emulator_base_urls(stack).values():
                assert httpx.get(f"{origin}/_emulator/requests", timeout=5).status_code == 200
            vault = {"X-Vault-Token": stack["PAYMENT_VAULT__TOKEN"]}
            kv = httpx.get(f"{stack['PAYMENT_VAULT__ADDR']}/v1/secret/data/payment-service/providers", headers=vault)
            assert set(kv.json()["data"]["data"]) == {
                "yookassa", "tbank", "sber", "mobile", "yookassa_payouts", "bank_transfer", "atol", "qiwi",
            }  # fmt: skip
            mounts = httpx.get(f"{stack['PAYMENT_VAULT__ADDR']}/v1/sys/mounts", headers=vault).json()
            assert mounts["transit/"]["type"] == "transit"

            # Demo data: the demo player's wallet is funded (and seeding twice changed nothing).
            demo = subprocess.run(
                [sys.executable, "-m", "payment_service.cli", "token", "user", "demo-player"],
                env={**env, **read_env_file(run_dir / "dev.env")},
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
            wallet = httpx.get(f"{base}/v1/wallets/me", headers={"Authorization": f"Bearer {demo}"})
            assert wallet.status_code == 200, wallet.text
            assert wallet.json()["balance"] == {"value": "5000.00", "currency": "RUB"}

            # A real payment through the running processes: API → YooKassa emulator → customer pays on
            # the emulator → signed webhook to the API → worker applies it → succeeded.
            auth = {"Authorization": f"Bearer {token}"}
            created = httpx.post(
                f"{base}/v1/payments",
                json={
                    "amount": {"value": "499.00", "currency": "RUB"},
                    "method": "bank_card",
                    "description": "Game key",
                    "return_url": "https://store.example/return",
                    "provider": "yookassa",
                },
                headers={**auth, "Idempotency-Key": "e2e-1"},
                timeout=10,
            )
            assert created.status_code == 201, created.text
            payment = created.json()
            assert payment["status"] == "requires_action"
            checkout = httpx.URL(payment["action"]["url"])
            emulator = f"{checkout.scheme}://{checkout.host}:{checkout.port}"
            assert emulator == emulator_base_urls(stack)["yookassa"]
            paid = httpx.post(
                f"{emulator}/_emulator/payments/{checkout.path.rsplit('/', 1)[-1]}/pay", json={}, timeout=10
            )
            assert paid.status_code == 200, paid.text
            wait_until(
                lambda: httpx.get(f"{base}/v1/payments/{payment['id']}", headers=auth).json()["status"] == "succeeded",
                20,
                "payment not applied from the webhook",
                log,
            )

            # A child that dies is reported and restarted.
            worker = next(p for p in children if "worker" in " ".join(p.cmdline()))
            worker.kill()
            wait_until(lambda: "worker restarted" in log.read_text(), 15, "worker not restarted", log)
            assert re.search(rf"worker \(pid {worker.pid}\) exited unexpectedly with signal SIGKILL", log.read_text())
            pids += [p.pid for p in psutil.Process(launcher.pid).children(recursive=True)]

            launcher.send_signal(signal.SIGINT)

            assert launcher.wait(timeout=40) == 0, log.read_text()[-4000:]
            assert gone(pids, timeout=5) == []
            assert not (run_dir / "stack.env").exists()
            assert (run_dir / "dev.env").exists()
        finally:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
            for pid in gone(pids, timeout=0):
                os.killpg(pid, signal.SIGKILL)
