"""Idempotency-Key on mutating requests: replay, reuse, concurrency, scoping, rollback, takeover."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from payment_service.config import Settings
from payment_service.db import checkpoint
from payment_service.deps import IdempotencyClaim, Session
from payment_service.errors import Conflict
from payment_service.kit import idempotency
from payment_service.middleware import UnitOfWorkMiddleware
from payment_service.resources import Resources
from tests.conftest import Tokens


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    delay_ms: int = 0
    fail: bool = False


router = APIRouter()


@router.post("/v1/_test/notes", status_code=201)
async def create_note(body: NoteIn, session: Session, claim: IdempotencyClaim) -> dict[str, Any]:
    """Writes a row in the request's transaction, then optionally waits or fails."""
    note_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO outbox_events (id, topic, key, type, version, source, payload) "
            "VALUES (:id, 'test.notes', :key, 'test.note', 1, 'tests', CAST(:p AS jsonb))"
        ),
        {"id": note_id, "key": str(note_id), "p": f'{{"text": "{body.text}"}}'},
    )
    if body.delay_ms:
        await asyncio.sleep(body.delay_ms / 1000)
    if body.fail:
        raise Conflict("asked to fail after writing")
    return {"id": str(note_id), "text": body.text, "claim_id": str(claim.id) if claim else None}


@pytest.fixture
async def notes_app(app: FastAPI) -> FastAPI:
    app.include_router(router)
    return app


async def count_notes(resources: Resources) -> int:
    async with resources.engine.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM outbox_events WHERE topic = 'test.notes'"))).scalar_one()
        )


class TestIdempotencyKey:
    async def test_missing_key_is_a_problem(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens
    ) -> None:
        r = await client.post("/v1/_test/notes", json={"text": "a"}, headers=tokens.headers(tokens.user()))

        assert r.status_code == 400
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "idempotency_key_missing"

    @pytest.mark.parametrize("key", ["", " ", "x" * 256, "key\twith-tab"])
    async def test_invalid_key_is_a_problem(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, key: str
    ) -> None:
        headers = tokens.headers(tokens.user())
        headers["Idempotency-Key"] = key

        r = await client.post("/v1/_test/notes", json={"text": "a"}, headers=headers)

        assert r.status_code == 400
        assert r.json()["code"] == "idempotency_key_invalid"

    async def test_same_key_same_request_replays_byte_for_byte(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        headers = tokens.headers(tokens.user(), key="k-1")

        first = await client.post("/v1/_test/notes", json={"text": "a"}, headers=headers)
        second = await client.post(
            "/v1/_test/notes", content=b'{ "text" :  "a" }', headers={**headers, "content-type": "application/json"}
        )

        assert first.status_code == 201
        assert second.status_code == 201
        assert second.content == first.content
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await count_notes(db) == 1

    async def test_same_key_different_request_is_rejected(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        headers = tokens.headers(tokens.user(), key="k-2")
        await client.post("/v1/_test/notes", json={"text": "a"}, headers=headers)

        r = await client.post("/v1/_test/notes", json={"text": "b"}, headers=headers)

        assert r.status_code == 422
        assert r.json()["code"] == "idempotency_key_reused"
        assert await count_notes(db) == 1

    async def test_keys_are_scoped_per_principal(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        a = await client.post(
            "/v1/_test/notes", json={"text": "a"}, headers=tokens.headers(tokens.user("u1"), key="same")
        )
        b = await client.post(
            "/v1/_test/notes", json={"text": "a"}, headers=tokens.headers(tokens.user("u2"), key="same")
        )

        assert a.status_code == b.status_code == 201
        assert a.json()["id"] != b.json()["id"]
        assert await count_notes(db) == 2

    async def test_concurrent_duplicates_execute_once(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        headers = tokens.headers(tokens.user(), key="race")

        responses = await asyncio.gather(
            *(client.post("/v1/_test/notes", json={"text": "a", "delay_ms": 200}, headers=headers) for _ in range(12))
        )

        statuses = sorted(r.status_code for r in responses)
        created = [r for r in responses if r.status_code == 201]
        in_use = [r for r in responses if r.status_code == 409]
        assert len(created) >= 1, statuses
        assert len(in_use) >= 1, statuses  # the duplicates really overlapped the first request
        assert len({r.content for r in created}) == 1  # any 201 beyond the first is a replay of it
        assert all(r.json()["code"] == "idempotency_key_in_use" for r in in_use)
        assert len(created) + len(in_use) == 12, statuses
        assert await count_notes(db) == 1
        after = await client.post("/v1/_test/notes", json={"text": "a", "delay_ms": 200}, headers=headers)
        assert after.content == created[0].content

    async def test_failed_request_leaves_nothing_and_can_be_retried(
        self, notes_app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        token = tokens.user()

        failed = await client.post(
            "/v1/_test/notes", json={"text": "a", "fail": True}, headers=tokens.headers(token, key="f")
        )
        assert failed.status_code == 409
        assert await count_notes(db) == 0

        invalid = await client.post("/v1/_test/notes", json={"text": 1}, headers=tokens.headers(token, key="g"))
        assert invalid.status_code == 422
        retried = await client.post("/v1/_test/notes", json={"text": "a"}, headers=tokens.headers(token, key="g"))
        assert retried.status_code == 201
        assert await count_notes(db) == 1

    async def test_unhandled_error_rolls_back_and_unlocks(
        self, app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        boom = APIRouter()

        @boom.post("/v1/_test/boom")
        async def explode(session: Session) -> None:
            await session.execute(
                text(
                    "INSERT INTO outbox_events (topic, key, type, version, source, payload) "
                    "VALUES ('test.notes', 'x', 't', 1, 'tests', '{}')"
                )
            )
            raise RuntimeError("kaboom")

        app.include_router(boom)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post("/v1/_test/boom", json={}, headers=tokens.headers(tokens.user(), key="b"))

        assert r.status_code == 500
        assert r.json()["code"] == "internal_error"
        assert "kaboom" not in r.text
        assert await count_notes(db) == 0

    async def test_a_request_whose_key_was_taken_over_answers_409_and_keeps_nothing_of_its_last_step(
        self, app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        slow = APIRouter()

        @slow.post("/v1/_test/slow", status_code=201)
        async def outlived(session: Session, claim: IdempotencyClaim) -> dict[str, str]:
            assert claim is not None
            await session.execute(text(_NOTE), {"p": '{"step": 1}'})
            await checkpoint(session)  # then a provider call outlives the lock timeout ...
            await _take_over(db, claim)  # ... and the client's retry takes the key over
            await session.execute(text(_NOTE), {"p": '{"step": 2}'})
            return {"done": "yes"}

        app.include_router(slow)
        r = await client.post("/v1/_test/slow", json={}, headers=tokens.headers(tokens.user(), key="late"))

        assert r.status_code == 409
        assert r.json()["code"] == "idempotency_key_in_use"
        assert r.headers["retry-after"] == "1"
        assert await count_notes(db) == 1  # step 1 was checkpointed; step 2 rolled back
        async with db.sessionmaker() as s:
            row = (
                await s.execute(text("SELECT response_status, locked_at FROM idempotency_keys WHERE key = 'late'"))
            ).one()
        assert row.response_status is None  # the retry that holds the key stores the response
        assert row.locked_at is not None

    async def test_a_checkpoint_after_a_takeover_commits_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        fenced = APIRouter()

        @fenced.post("/v1/_test/fenced", status_code=201)
        async def two_steps(session: Session, claim: IdempotencyClaim) -> dict[str, str]:
            assert claim is not None
            await session.execute(text(_NOTE), {"p": '{"step": 1}'})
            await checkpoint(session)  # a call outlives the lock timeout; the retry takes the key over
            await _take_over(db, claim)
            await session.execute(text(_NOTE), {"p": '{"step": 2}'})
            await checkpoint(session)  # no recovery point recorded in between: the fence alone stops it
            await session.execute(text(_NOTE), {"p": '{"step": 3}'})
            return {"done": "yes"}

        app.include_router(fenced)
        r = await client.post("/v1/_test/fenced", json={}, headers=tokens.headers(tokens.user(), key="fenced"))

        assert r.status_code == 409
        assert r.json()["code"] == "idempotency_key_in_use"
        assert await count_notes(db) == 1  # step 2 was not committed beside the new holder's work

    async def test_a_recovery_point_rolled_back_with_its_savepoint_does_not_excuse_the_fence(
        self, app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        undone = APIRouter()

        @undone.post("/v1/_test/undone", status_code=201)
        async def savepoint_undone(session: Session, claim: IdempotencyClaim) -> dict[str, str]:
            assert claim is not None
            await checkpoint(session)  # the claim is committed; a new transaction follows
            try:
                async with session.begin_nested():
                    await idempotency.set_recovery_point(session, claim, "tried")
                    raise RuntimeError("the step failed: its savepoint (and the row lock) is gone")
            except RuntimeError:
                pass
            await _take_over(db, claim)  # the client's retry takes the key over
            await session.execute(text(_NOTE), {"p": '{"step": "after"}'})
            await checkpoint(session)
            return {"done": "yes"}

        app.include_router(undone)
        r = await client.post("/v1/_test/undone", json={}, headers=tokens.headers(tokens.user(), key="undone"))

        assert r.status_code == 409
        assert await count_notes(db) == 0

    async def test_a_checkpoint_costs_no_extra_statement_after_a_recovery_point(
        self, app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, db: Resources
    ) -> None:
        statements: list[str] = []
        counted = APIRouter()

        @counted.post("/v1/_test/counted", status_code=201)
        async def recorded(session: Session, claim: IdempotencyClaim) -> dict[str, str]:
            assert claim is not None
            await idempotency.set_recovery_point(session, claim, "step_1")
            sync_engine = session.bind.sync_engine  # type: ignore[union-attr]

            def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                statements.append(statement)

            sqlalchemy.event.listen(sync_engine, "before_cursor_execute", seen)
            try:
                await checkpoint(session)  # the recovery point locked the key's row: no statement
                await checkpoint(session)  # nothing open: no statement either
                await session.execute(text("SELECT 1"))
                await checkpoint(session)  # nothing checked the token in this transaction: the fence's own
            finally:
                sqlalchemy.event.remove(sync_engine, "before_cursor_execute", seen)
            return {"done": "yes"}

        app.include_router(counted)
        r = await client.post("/v1/_test/counted", json={}, headers=tokens.headers(tokens.user(), key="counted"))

        assert r.status_code == 201, r.text
        fences = [s for s in statements if "FOR NO KEY UPDATE" in s]
        assert len(fences) == 1
        assert statements.index(fences[0]) > statements.index("SELECT 1")


async def _take_over(db: Resources, claim: idempotency.Claim) -> None:
    """What a retry does to a claim that outlived the lock timeout: the key's lock is its now."""
    async with db.sessionmaker() as other:
        await other.execute(
            text("UPDATE idempotency_keys SET lock_token = gen_random_uuid() WHERE id = :id"), {"id": claim.id}
        )
        await other.commit()


_NOTE = (
    "INSERT INTO outbox_events (id, topic, key, type, version, source, payload) "
    "VALUES (gen_random_uuid(), 'test.notes', 'x', 't', 1, 'tests', CAST(:p AS jsonb))"
)


class TestClaim:
    """The claim function itself, against Postgres."""

    async def claim(self, session: Any, key: str, fp: str = "fp", now: datetime | None = None) -> Any:
        return await idempotency.claim(
            session,
            principal="user:1",
            key=key,
            method="POST",
            path="/v1/x",
            request_fingerprint=fp,
            now=now or datetime.now(UTC),
            lock_timeout=timedelta(seconds=60),
        )

    async def test_in_progress_key_after_checkpoint_is_in_use_until_stale(self, db: Resources) -> None:
        t0 = datetime.now(UTC)
        async with db.sessionmaker() as s:
            first = await self.claim(s, "ck", now=t0)
            await idempotency.set_recovery_point(s, first, "attempt_created")
            await s.commit()  # a checkpoint before a provider call; the process then dies

        async with db.sessionmaker() as s:
            with pytest.raises(idempotency.IdempotencyKeyInUse):
                await self.claim(s, "ck", now=t0 + timedelta(seconds=30))
            await s.rollback()

        async with db.sessionmaker() as s:
            taken = await self.claim(s, "ck", now=t0 + timedelta(seconds=61))
            await s.commit()
        assert isinstance(taken, idempotency.Claim)
        assert taken.resumed is True
        assert taken.recovery_point == "attempt_created"
        assert taken.id == first.id

    async def test_a_claim_taken_over_can_neither_record_progress_finish_nor_unlock(self, db: Resources) -> None:
        """The first request outlived the lock timeout and its client's retry took the key over:
        the first may not store its response over the retry's, nor free the retry's lock."""
        t0 = datetime.now(UTC)
        async with db.sessionmaker() as s:
            first = await self.claim(s, "to", now=t0)
            await s.commit()  # a checkpoint, then a provider call that hangs
        async with db.sessionmaker() as s:
            retry = await self.claim(s, "to", now=t0 + timedelta(seconds=61))
            await s.commit()
        assert isinstance(retry, idempotency.Claim)
        assert retry.resumed
        assert retry.token != first.token

        stored = idempotency.StoredResponse(status=201, headers={}, body=b'{"first": true}')
        async with db.sessionmaker() as s:
            with pytest.raises(idempotency.IdempotencyKeyInUse):
                await idempotency.set_recovery_point(s, first, "attempt_created", now=t0 + timedelta(seconds=62))
            await s.rollback()
            with pytest.raises(idempotency.IdempotencyKeyInUse):
                await idempotency.complete(s, first, stored, now=t0 + timedelta(seconds=62))
            await s.rollback()
            await idempotency.release(s, first)  # a late background unlock of the first request
            await s.commit()

        async with db.sessionmaker() as s:
            with pytest.raises(idempotency.IdempotencyKeyInUse):  # the retry still holds the key
                await self.claim(s, "to", now=t0 + timedelta(seconds=63))
            await s.rollback()
            await idempotency.set_recovery_point(s, retry, "attempt_created", now=t0 + timedelta(seconds=63))
            mine = idempotency.StoredResponse(status=201, headers={}, body=b'{"retry": true}')
            await idempotency.complete(s, retry, mine, now=t0 + timedelta(seconds=64))
            await s.commit()
        async with db.sessionmaker() as s:
            replay = await self.claim(s, "to", now=t0 + timedelta(seconds=65))
            await s.rollback()
        assert replay == mine

    async def test_release_unlocks_for_immediate_retry(self, db: Resources) -> None:
        t0 = datetime.now(UTC)
        async with db.sessionmaker() as s:
            first = await self.claim(s, "rl", now=t0)
            await s.commit()
            await idempotency.release(s, first)
            await s.commit()

        async with db.sessionmaker() as s:
            again = await self.claim(s, "rl", now=t0 + timedelta(seconds=1))
            await s.commit()
        assert isinstance(again, idempotency.Claim)
        assert again.resumed

    async def test_an_unlock_that_fails_is_retried_in_the_background(
        self, db: Resources, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Under overload the unlock after a failed request gets no pooled connection either; the
        key must not stay locked (409 to every retry) until the lock times out."""
        t0 = datetime.now(UTC)
        async with db.sessionmaker() as s:
            claimed = await self.claim(s, "bg", now=t0)
            await s.commit()  # a checkpoint committed the key; then the request failed
        real_release = idempotency.release
        calls = 0

        async def flaky_release(session: Any, claim_: idempotency.Claim) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise sqlalchemy.exc.TimeoutError("QueuePool limit reached")
            await real_release(session, claim_)

        monkeypatch.setattr(idempotency, "release", flaky_release)
        uow = UnitOfWorkMiddleware(
            FastAPI(), sessionmaker=lambda: db.sessionmaker, settings=settings, clock=lambda: db.clock
        )

        async with db.sessionmaker() as s:
            await uow._abandon(s, claimed)
        await asyncio.wait_for(asyncio.gather(*uow._releases), 5)

        assert calls == 2
        async with db.sessionmaker() as s:
            locked = (
                await s.execute(
                    text("SELECT locked_at FROM idempotency_keys WHERE key = 'bg' AND principal = 'user:1'")
                )
            ).scalar_one()
        assert locked is None

    async def test_prune_deletes_only_old_keys(self, db: Resources) -> None:
        now = datetime.now(UTC)
        async with db.sessionmaker() as s:
            await self.claim(s, "old", now=now - timedelta(hours=73))
            await self.claim(s, "new", now=now - timedelta(hours=1))
            await s.commit()

        async with db.sessionmaker() as s:
            deleted = await idempotency.prune(s, older_than=now - timedelta(hours=72))
            await s.commit()
            left = (await s.execute(text("SELECT key FROM idempotency_keys"))).scalars().all()

        assert deleted == 1
        assert left == ["new"]


class TestFingerprint:
    def test_json_whitespace_and_key_order_do_not_matter(self) -> None:
        a = idempotency.fingerprint("POST", "/v1/x", "", b'{"a":1,"b":[1,2]}')
        b = idempotency.fingerprint("POST", "/v1/x", "", b'{ "b": [1, 2], "a": 1 }')

        assert a == b

    def test_path_query_and_body_matter(self) -> None:
        base = idempotency.fingerprint("POST", "/v1/x", "", b"{}")

        assert base != idempotency.fingerprint("POST", "/v1/y", "", b"{}")
        assert base != idempotency.fingerprint("POST", "/v1/x", "a=1", b"{}")
        assert base != idempotency.fingerprint("POST", "/v1/x", "", b'{"a":1}')
