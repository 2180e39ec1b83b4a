"""The ``payment-service`` command: token, migrate, worker (real processes where it matters)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from payment_service.auth import PrincipalKind, decode_token
from payment_service.cli import app
from payment_service.config import AuthSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("PAYMENT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_")}
    return {**env, **extra}


def console_script() -> list[str]:
    script = shutil.which("payment-service", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "payment_service.cli"]


@pytest.fixture
def bare_runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner with no PAYMENT_* variable at all."""
    for name in list(os.environ):
        if name.startswith("PAYMENT_"):
            monkeypatch.delenv(name)
    return CliRunner()


@pytest.fixture
def runner(settings: Settings, bare_runner: CliRunner) -> CliRunner:
    assert settings.auth.hs256_secret is not None
    return CliRunner(env={"PAYMENT_AUTH__HS256_SECRET": settings.auth.hs256_secret.get_secret_value()})


class TestToken:
    def test_console_script_prints_a_user_token_the_service_accepts(self, settings: Settings, tmp_path: Path) -> None:
        assert settings.auth.hs256_secret is not None
        env = clean_env(PAYMENT_AUTH__HS256_SECRET=settings.auth.hs256_secret.get_secret_value())

        result = subprocess.run(
            [*console_script(), "token", "user", "user-42", "--env-file", str(tmp_path / "none.env")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2, result.stderr  # a missing --env-file is refused
        result = subprocess.run(
            [*console_script(), "token", "user", "user-42"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )

        principal = decode_token(result.stdout.strip(), settings.auth)
        assert principal.kind is PrincipalKind.user
        assert principal.subject == "user-42"
        assert "payments:write" in principal.scopes

    def test_service_token_carries_the_given_scopes(self, runner: CliRunner, settings: Settings) -> None:
        result = runner.invoke(
            app, ["token", "service", "streaming", "--scope", "donations:write", "-s", "payouts:read"]
        )

        assert result.exit_code == 0, result.output
        principal = decode_token(result.stdout.strip(), settings.auth)
        assert principal.kind is PrincipalKind.service
        assert principal.subject == "streaming"
        assert principal.scopes == {"donations:write", "payouts:read"}

    def test_admin_token_defaults_to_every_scope(self, runner: CliRunner, settings: Settings) -> None:
        result = runner.invoke(app, ["token", "admin", "--ttl", "60"])

        assert result.exit_code == 0, result.output
        principal = decode_token(result.stdout.strip(), settings.auth)
        assert principal.is_admin
        assert principal.has("refunds:write")

    def test_reads_the_dev_secret_from_the_dev_env_file(self, bare_runner: CliRunner, tmp_path: Path) -> None:
        dev_secret = "dev-" + uuid.uuid4().hex * 2
        dev_env = tmp_path / "dev.env"
        dev_env.write_text(f"# written by payment-service dev\nPAYMENT_AUTH__HS256_SECRET={dev_secret}\n")

        result = bare_runner.invoke(app, ["token", "user", "u-1", "--env-file", str(dev_env)])

        assert result.exit_code == 0, result.output
        dev_auth = AuthSettings(hs256_secret=SecretStr(dev_secret))
        assert decode_token(result.stdout.strip(), dev_auth).subject == "u-1"

    def test_without_a_key_it_explains_what_to_do(self, bare_runner: CliRunner, tmp_path: Path) -> None:
        empty = tmp_path / "empty.env"
        empty.write_text("")

        result = bare_runner.invoke(app, ["token", "user", "u-1", "--env-file", str(empty)])

        assert result.exit_code == 2
        assert "PAYMENT_AUTH__HS256_SECRET is not set" in result.output


@pytest.fixture
def empty_database() -> Iterator[str]:
    import asyncio

    name = f"payment_cli_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class TestMigrate:
    def test_upgrades_an_empty_database_to_head(self, empty_database: str) -> None:
        import asyncio

        result = subprocess.run(
            [*console_script(), "migrate"],
            env=clean_env(PAYMENT_DB__URL=empty_database, PAYMENT_LOG_JSON="false"),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stderr

        async def version() -> str | None:
            conn = await asyncpg.connect(empty_database)
            try:
                return await conn.fetchval("SELECT version_num FROM alembic_version")  # type: ignore[no-any-return]
            finally:
                await conn.close()

        assert asyncio.run(version())


class TestWorker:
    def test_sigterm_stops_the_worker_promptly(self, settings: Settings, tmp_path: Path) -> None:
        env = clean_env(
            PAYMENT_DB__URL=settings.db.url.get_secret_value(),
            PAYMENT_REDIS__URL=settings.redis.url.get_secret_value(),
            PAYMENT_KAFKA__BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers,
            PAYMENT_LOG_JSON="false",
        )
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*console_script(), "worker"], env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 20
            while "worker_started" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            time.sleep(0.3)
            assert proc.poll() is None, "the worker must run until told to stop"

            proc.send_signal(signal.SIGTERM)

            assert proc.wait(timeout=15) == 0, log.read_text()
            assert "worker_stopped" in log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
