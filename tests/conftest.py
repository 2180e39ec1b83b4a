"""Test infrastructure: real Postgres, Redis, Tansu and OpenBao.

* Postgres and Redis are the machine's (``PAYMENT_TEST_DATABASE_URL`` / ``PAYMENT_TEST_REDIS_URL``
  override them); each xdist worker gets its own database, created and migrated once, and its
  own Redis db number.
* Tansu and OpenBao are started per worker on free ports by the session fixtures and stopped
  at the end.
* Tests that touch data get clean tables: every table is truncated after the test.
* ``client`` is an ``httpx.AsyncClient`` on the ASGI app (``ASGITransport``), lifespan run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import text

from payment_service.auth import PrincipalKind, mint_token
from payment_service.config import Environment, Settings
from payment_service.devstack import OpenBao, Tansu
from payment_service.main import create_app
from payment_service.resources import Resources

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("PAYMENT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PAYMENT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _worker_index(worker_id: str) -> int:
    return 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))


@pytest.fixture(scope="session")
def worker_index(worker_id: str) -> int:
    return _worker_index(worker_id)


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    broker = Tansu(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    server = OpenBao(log_path=tmp_path_factory.mktemp("openbao") / "bao.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def database_url(worker_index: int) -> AsyncIterator[str]:
    name = f"payment_test_{worker_index}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    yield url
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str, worker_index: int, tansu: Tansu, openbao: OpenBao) -> Settings:
    s = Settings(
        env=Environment.test,
        log_json=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    s.db.url = SecretStr(database_url)
    s.db.pool_size = 20
    s.redis.url = SecretStr(f"{REDIS_URL}/{1 + worker_index % 15}")
    s.kafka.bootstrap_servers = tansu.bootstrap_servers
    s.vault.addr = openbao.addr
    s.vault.token = SecretStr(openbao.root_token)
    s.auth.hs256_secret = SecretStr("test-" + uuid.uuid4().hex)
    return s


@pytest.fixture(scope="session")
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    res = Resources.build(settings, application_name="payment-service-test")
    yield res
    await res.close()


@pytest.fixture
async def db(resources: Resources) -> AsyncIterator[Resources]:
    """Use the database; all tables are emptied after the test."""
    yield resources
    async with resources.engine.begin() as conn:
        tables = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await resources.redis.flushdb()


@pytest.fixture
async def app(settings: Settings, db: Resources) -> AsyncIterator[object]:
    application = create_app(settings, resources=db)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class Tokens:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def user(self, user_id: str | None = None, scopes: list[str] | None = None) -> str:
        return mint_token(
            self.settings.auth, kind=PrincipalKind.user, subject=user_id or uuid.uuid4().hex, scopes=scopes
        )

    def service(self, name: str, scopes: list[str]) -> str:
        return mint_token(self.settings.auth, kind=PrincipalKind.service, subject=name, scopes=scopes)

    def admin(self, scopes: list[str] | None = None) -> str:
        return mint_token(self.settings.auth, kind=PrincipalKind.admin, subject="admin-1", scopes=scopes or ["*"])

    @staticmethod
    def headers(token: str, key: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {token}"}
        if key is not None:
            h["Idempotency-Key"] = key
        return h


@pytest.fixture(scope="session")
def tokens(settings: Settings) -> Tokens:
    return Tokens(settings)
