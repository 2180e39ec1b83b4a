"""The one-statement wallet donation (``donation_create_from_wallet``) against the real Postgres.

The unit-of-work middleware tries it first for ``POST /v1/donations``; whatever it does not do
plainly (short funds, a known or busy key, a twin) the general path does; on first use of an
account the ledger opens it and the statement runs again. These tests prove that the fast path is really taken, writes the same rows as the general
path, is atomic, and that concurrency on one key or one wallet neither loses nor doubles money.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from structlog.testing import capture_logs

from payment_service.auth import Principal, PrincipalKind
from payment_service.db import asyncpg_dsn, transaction
from payment_service.donation import repository
from payment_service.donation import service as donation_service
from payment_service.donation.endpoints import CREATED_HEADERS
from payment_service.kit.idempotency import KeyedRequest
from payment_service.ledger import accounts
from payment_service.ledger import service as ledger_service
from payment_service.models.donation import Donation
from payment_service.outbox import service as outbox_service
from tests.donation.conftest import DonationsEnv, fund_wallet
from tests.donation.test_endpoints import outbox

STREAMER = "streamer-1"
VIEWER = "viewer-1"


def fast_path_count(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("http_fast_path_requests_total", {"path": "/v1/donations", "outcome": outcome}) or 0.0
    )


async def warm_up(donations: DonationsEnv, *, funds: int = 1000_00) -> None:
    """Fund the wallet and make one donation (it opens the streamer's and the fee accounts)."""
    await fund_wallet(donations.resources, VIEWER, funds)
    first = await donations.donate(method="wallet", amount="10.00")
    assert first.status_code == 201, first.text


class TestTaken:
    async def test_first_use_of_the_accounts_opens_them_and_stays_on_the_fast_path(
        self, donations: DonationsEnv
    ) -> None:
        await fund_wallet(donations.resources, VIEWER, 1000_00)
        streamer_account = accounts.streamer_balance(STREAMER, "RUB")
        count = text("SELECT count(*) FROM ledger_accounts WHERE id = :id")
        async with donations.resources.sessionmaker() as session:
            assert (await session.execute(count, {"id": streamer_account.id})).scalar_one() == 0
        done, unknown = fast_path_count("done"), fast_path_count("unknown_accounts")

        first = await donations.donate(method="wallet", amount="10.00")
        assert (fast_path_count("done"), fast_path_count("unknown_accounts")) == (done + 1, unknown)
        second = await donations.donate(method="wallet", amount="123.45", key="fast-1")
        assert (fast_path_count("done"), fast_path_count("unknown_accounts")) == (done + 2, unknown)

        assert first.status_code == second.status_code == 201, second.text
        a, b = first.json(), second.json()
        assert list(a) == list(b)  # same fields in the same order as the general path's response
        assert b["status"] == "processed"
        assert b["source"] == "wallet"
        assert b["payment"] is None
        assert (a["alert_id"], b["alert_id"]) == (1, 2)
        assert b["amount"] == {"value": "123.45", "currency": "RUB"}
        assert b["fee"] == {"value": "6.17", "currency": "RUB"}
        assert b["streamer_amount"] == {"value": "117.28", "currency": "RUB"}
        async with donations.resources.sessionmaker() as session:
            balance = (await ledger_service.balances(session, [streamer_account]))[streamer_account.id]
        assert a["streamer_amount"] == {"value": "5.00", "currency": "RUB"}  # 10.00 less the minimum fee
        assert balance.posted.amount_minor == 500 + 11728
        assert b["display_name"] == "Зритель"
        assert b["message"] == "Привет со стрима!"
        assert second.headers["content-type"] == "application/json"

    async def test_it_wakes_the_relay_after_its_commit(self, donations: DonationsEnv) -> None:
        await warm_up(donations)
        listener = await asyncpg.connect(asyncpg_dsn(donations.resources.settings.db.url.get_secret_value()))
        received: asyncio.Queue[str] = asyncio.Queue()
        await listener.add_listener("outbox", lambda *args: received.put_nowait(args[2]))
        try:
            done = fast_path_count("done")
            response = await donations.donate(method="wallet", amount="10.00", key="wake-1")
            assert response.status_code == 201, response.text
            assert fast_path_count("done") == done + 1
            assert await asyncio.wait_for(received.get(), timeout=5) == "outbox"
        finally:
            await listener.close()

    async def test_it_writes_what_the_general_path_writes(self, donations: DonationsEnv) -> None:
        await warm_up(donations)
        done = fast_path_count("done")

        r = await donations.donate(method="wallet", amount="100.00", key="fast-rows")

        assert fast_path_count("done") == done + 1
        body = r.json()
        row = (
            await donations.rows(
                "SELECT status, source, alert_seq, ledger_transfer_id, request_key, processed_at, amount_minor, "
                "fee_minor, streamer_minor, moderation_flags, clawed_back_minor FROM donations WHERE id = :id",
                id=uuid.UUID(body["id"]),
            )
        )[0]
        assert (row.status, row.source, row.alert_seq) == ("processed", "wallet", body["alert_id"])
        assert (row.amount_minor, row.fee_minor, row.streamer_minor) == (100_00, 5_00, 95_00)
        assert row.processed_at is not None
        assert row.clawed_back_minor == 0
        assert row.moderation_flags == []
        transfer_id = await donations.scalar(
            "SELECT id FROM ledger_transfers WHERE idempotency_key = :k", k=f"donation:{body['id']}:split"
        )
        assert transfer_id is not None
        assert transfer_id == row.ledger_transfer_id
        key = (
            await donations.rows(
                "SELECT id, response_status, response_headers, response_body, locked_at, recovery_point "
                "FROM idempotency_keys WHERE key = 'fast-rows'"
            )
        )[0]
        assert key.id == row.request_key
        assert (key.response_status, key.locked_at, key.recovery_point) == (201, None, "finished")
        assert bytes(key.response_body) == r.content
        assert key.response_headers == CREATED_HEADERS
        event = (await outbox(donations, "donation.processed"))[-1]
        assert event["donation_id"] == body["id"]
        assert event["alert_seq"] == body["alert_id"] == 2
        assert (event["amount_minor"], event["fee_minor"], event["streamer_amount_minor"]) == (100_00, 5_00, 95_00)
        assert await donations.balance(f"user:{VIEWER}:wallet") == 1000_00 - 10_00 - 100_00
        assert await donations.balance(f"streamer:{STREAMER}:balance") == 5_00 + 95_00
        assert await donations.balance("platform:fees") == 5_00 + 5_00

    async def test_a_replay_returns_the_stored_bytes_and_moves_nothing(self, donations: DonationsEnv) -> None:
        await warm_up(donations)

        first = await donations.donate(method="wallet", amount="50.00", key="fast-replay")
        again = await donations.donate(method="wallet", amount="50.00", key="fast-replay")
        other = await donations.donate(method="wallet", amount="51.00", key="fast-replay")

        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert other.status_code == 422
        assert other.json()["code"] == "idempotency_key_reused"
        assert await donations.scalar("SELECT count(*) FROM donations") == 2
        assert await donations.balance(f"user:{VIEWER}:wallet") == 1000_00 - 10_00 - 50_00

    async def test_a_short_wallet_is_402_from_the_general_path_and_records_nothing(
        self, donations: DonationsEnv
    ) -> None:
        await warm_up(donations, funds=20_00)
        short = fast_path_count("insufficient_funds")

        r = await donations.donate(method="wallet", amount="10.01", key="fast-short")

        assert r.status_code == 402
        assert r.json()["code"] == "insufficient_funds"
        assert r.json()["shortfall"] == {"value": "0.01", "currency": "RUB"}
        assert fast_path_count("insufficient_funds") == short + 1
        assert await donations.scalar("SELECT count(*) FROM donations") == 1
        assert await donations.scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'fast-short'") == 0
        assert await donations.scalar("SELECT last_alert_seq FROM donation_streamers") == 1
        assert await donations.balance(f"user:{VIEWER}:wallet") == 10_00

    async def test_card_donations_and_invalid_bodies_are_left_to_the_general_path(
        self, donations: DonationsEnv
    ) -> None:
        await warm_up(donations)
        before = {k: fast_path_count(k) for k in ("done", "not_wallet", "invalid_amount", "self_donation", "not_json")}

        card = await donations.donate(amount="100.00", provider="yookassa")
        invalid = await donations.donate(method="wallet", amount="0.50")
        self_donation = await donations.donate(method="wallet", streamer_id=VIEWER)
        as_text = await donations.client.post(
            "/v1/donations",
            content=orjson.dumps({"streamer_id": STREAMER, "amount": {"value": "10.00", "currency": "RUB"},
                                  "method": "wallet"}),
            headers={**donations.headers(VIEWER), "Content-Type": "text/plain"},
        )  # fmt: skip

        assert card.status_code == 201
        assert card.json()["status"] == "pending"
        assert invalid.status_code == 422
        assert invalid.json()["code"] == "invalid_amount"
        assert self_donation.status_code == 422
        assert self_donation.json()["code"] == "self_donation"
        assert as_text.status_code == 422, as_text.text
        after = {k: fast_path_count(k) for k in before}
        assert after == {**before, **{k: before[k] + 1 for k in before if k != "done"}}

    async def test_it_answers_what_the_general_path_shows_for_the_same_donation(self, donations: DonationsEnv) -> None:
        await warm_up(donations)
        done = fast_path_count("done")
        tricky = 'Он сказал "alert_id":null \\ и ушёл 🎉'

        created = await donations.donate(method="wallet", amount="77.70", message=tricky, display_name='Ник "X"')
        shown = await donations.client.get(f"/v1/donations/{created.json()['id']}", headers=donations.headers(VIEWER))

        assert fast_path_count("done") == done + 1
        assert created.status_code == 201
        assert shown.status_code == 200
        assert created.json() == shown.json()
        assert created.content == shown.content  # same serializer, byte for byte
        assert created.json()["message"] == tricky
        assert created.json()["display_name"] == 'Ник "X"'
        assert created.json()["alert_id"] == 2
        assert "idempotent-replayed" not in created.headers

    async def test_a_service_donating_for_a_viewer_goes_the_fast_way(self, donations: DonationsEnv) -> None:
        await warm_up(donations)
        done = fast_path_count("done")
        token = donations.env.tokens.service("streaming", ["donations:write", "donations:read"])

        r = await donations.client.post(
            "/v1/donations",
            json={"streamer_id": STREAMER, "amount": {"value": "20.00", "currency": "RUB"}, "method": "wallet",
                  "donor_id": VIEWER},
            headers=donations.env.tokens.headers(token, key="svc-1"),
        )  # fmt: skip

        assert r.status_code == 201, r.text
        assert r.json()["donor_id"] == VIEWER
        assert fast_path_count("done") == done + 1
        assert await donations.balance(f"user:{VIEWER}:wallet") == 1000_00 - 10_00 - 20_00

    async def test_a_streamers_first_alert_can_come_from_the_fast_path(self, donations: DonationsEnv) -> None:
        await warm_up(donations)
        async with transaction(donations.resources.sessionmaker) as session:
            await ledger_service.ensure_accounts(session, [accounts.streamer_balance("streamer-new")])
        done = fast_path_count("done")

        r = await donations.donate(method="wallet", amount="15.00", streamer_id="streamer-new")

        assert r.status_code == 201, r.text
        assert fast_path_count("done") == done + 1
        assert r.json()["alert_id"] == 1
        assert (
            await donations.scalar("SELECT last_alert_seq FROM donation_streamers WHERE streamer_id = 'streamer-new'")
            == 1
        )

    async def test_its_alert_is_published_and_marked(self, donations: DonationsEnv) -> None:
        await warm_up(donations)

        r = await donations.donate(method="wallet", amount="30.00")
        await donations.drain()

        published = await donations.scalar(
            "SELECT alert_published_at FROM donations WHERE id = :id", id=uuid.UUID(r.json()["id"])
        )
        assert published is not None

    async def test_a_key_held_elsewhere_is_409_and_nothing_is_written(self, donations: DonationsEnv) -> None:
        await warm_up(donations)
        principal = f"user:{VIEWER}"
        busy = fast_path_count("key_busy")
        holder = await asyncpg.connect(asyncpg_dsn(donations.resources.settings.db.url.get_secret_value()))
        try:
            await holder.execute("SELECT pg_advisory_lock(hashtextextended($1 || chr(1) || $2, 0))", principal, "held")
            r = await donations.donate(method="wallet", amount="10.00", key="held")
        finally:
            await holder.close()

        assert r.status_code == 409, r.text
        assert r.json()["code"] == "idempotency_key_in_use"
        assert fast_path_count("key_busy") == busy + 1
        assert await donations.scalar("SELECT count(*) FROM donations") == 1
        again = await donations.donate(method="wallet", amount="10.00", key="held")
        assert again.status_code == 201

    async def test_the_row_json_names_every_column_of_the_table(self, donations: DonationsEnv) -> None:
        """``jsonb_populate_record`` writes NULL for a column the JSON lacks: they must match."""
        columns = {
            r[0]
            for r in await donations.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'donations'"
            )
        }
        now = datetime.now(UTC)
        donation = Donation(id=uuid.uuid4(), created_at=now, updated_at=now)

        assert set(orjson.loads(repository._row_json(donation))) == columns


class TestConcurrency:
    async def test_one_key_sent_many_times_at_once_donates_once(self, donations: DonationsEnv) -> None:
        await warm_up(donations)

        answers = await asyncio.gather(
            *(donations.donate(method="wallet", amount="25.00", key="fast-twins") for _ in range(12))
        )

        ok = [a for a in answers if a.status_code == 201]
        assert ok, [a.text for a in answers]
        assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
        assert len({a.content for a in ok}) == 1
        assert await donations.scalar("SELECT count(*) FROM donations") == 2
        assert await donations.balance(f"user:{VIEWER}:wallet") == 1000_00 - 10_00 - 25_00

    async def test_a_wallet_emptied_by_many_donations_at_once_is_exact(self, donations: DonationsEnv) -> None:
        await warm_up(donations, funds=10_00 + 100_00)  # 100.00 left: ten donations of 10.00

        answers = await asyncio.gather(*(donations.donate(method="wallet", amount="10.00") for _ in range(16)))

        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 10 + [402] * 6, [a.text for a in answers if a.status_code not in (201, 402)]
        assert await donations.balance(f"user:{VIEWER}:wallet") == 0
        assert (
            await donations.balance(f"streamer:{STREAMER}:balance") == 11 * 5_00
        )  # the minimum fee (5.00) is half of each
        assert await donations.balance("platform:fees") == 11 * 5_00
        ids = sorted(a.json()["alert_id"] for a in answers if a.status_code == 201)
        assert ids == list(range(2, 12))  # gapless after the warm-up's 1
        events = await outbox(donations, "donation.processed")
        assert sorted(e["alert_seq"] for e in events) == list(range(1, 12))

    async def test_donations_to_one_streamer_take_turns_in_the_process(
        self, donations: DonationsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await warm_up(donations, funds=10_00 + 160_00)
        real = repository.create_from_wallet
        running = most = 0

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await asyncio.sleep(0.02)  # long enough for every request to arrive meanwhile
                return await real(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                running -= 1

        monkeypatch.setattr(repository, "create_from_wallet", counted)
        answers = await asyncio.gather(*(donations.donate(method="wallet", amount="10.00") for _ in range(16)))

        assert [a.status_code for a in answers] == [201] * 16, [a.text for a in answers if a.status_code != 201]
        assert most == donations.resources.settings.donations.statements_per_streamer  # the others waited
        ids = sorted(a.json()["alert_id"] for a in answers)
        assert ids == list(range(2, 18))

    async def test_a_donation_that_gets_no_turn_in_time_is_answered_503_with_nothing_written(
        self, donations: DonationsEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await warm_up(donations)
        monkeypatch.setattr(donations.resources.settings.donations, "statements_per_streamer", 1)
        monkeypatch.setattr(donations.resources.settings.donations, "turn_timeout_seconds", 0.2)
        real = repository.create_from_wallet
        release = asyncio.Event()

        async def stuck(*args: object, **kwargs: object) -> object:
            await release.wait()  # the turn's holder takes long (a slow statement)
            return await real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(repository, "create_from_wallet", stuck)
        first = asyncio.create_task(donations.donate(method="wallet", amount="10.00"))
        await asyncio.sleep(0.05)
        with capture_logs() as logged:
            second = await donations.donate(method="wallet", amount="10.00")
        release.set()

        assert second.status_code == 503, second.text
        assert second.json()["code"] == "database_busy"
        assert second.headers.get("retry-after")
        assert [e["streamer_id"] for e in logged if e["event"] == "donation_turn_timeout"] == [STREAMER]
        assert (await first).status_code == 201
        assert await donations.scalar("SELECT count(*) FROM donations") == 2  # the warm-up's and the first


class TestAtomic:
    async def test_a_failure_after_the_posting_leaves_nothing(self, donations: DonationsEnv) -> None:
        """The donation row violates its column limit after ``ledger_post`` succeeded inside the
        statement: the whole statement, posting included, is rolled back."""
        await warm_up(donations)
        resources = donations.resources
        principal = Principal(kind=PrincipalKind.user, subject=VIEWER, scopes=frozenset({"donations:write"}))
        now = datetime.now(UTC)
        donation = Donation(
            id=uuid.uuid4(), streamer_id=STREAMER, donor_id=VIEWER, created_by=principal.key, source="wallet",
            method="wallet", status="processed", amount_minor=30_00, currency="RUB", fee_minor=5_00,
            streamer_minor=25_00, display_name="x" * 65, message=None, moderation_flags=[], clawed_back_minor=0,
            created_at=now, updated_at=now, processed_at=now,
        )  # fmt: skip
        transfer = ledger_service.prepare(
            postings=donation_service.split_postings(donation, accounts.user_wallet(VIEWER)),
            idempotency_key=f"donation:{donation.id}:split",
            reference=f"donation:{donation.id}",
            reason="donation",
            now=now,
        )
        conn = await asyncpg.connect(asyncpg_dsn(resources.settings.db.url.get_secret_value()))
        try:
            with pytest.raises(asyncpg.StringDataRightTruncationError):
                await repository.create_from_wallet(
                    conn,
                    request=KeyedRequest(principal.key, "atomic-1", "POST", "/v1/donations", "f" * 64),
                    key_id=uuid.uuid4(),
                    now=now,
                    response_status=201,
                    response_headers=CREATED_HEADERS,
                    body_head=b"{",
                    body_tail=b"}",
                    donation=donation,
                    transfer=transfer,
                    event=outbox_service.row_of(donation_service._processed_event(donation, now=now), key=STREAMER),
                )
        finally:
            await conn.close()
        assert await donations.scalar("SELECT count(*) FROM ledger_transfers WHERE id = :t", t=transfer.id) == 0
        assert await donations.scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'atomic-1'") == 0
        assert await donations.scalar("SELECT last_alert_seq FROM donation_streamers") == 1
        assert await donations.scalar("SELECT count(*) FROM donations") == 1
        assert await donations.balance(f"user:{VIEWER}:wallet") == 1000_00 - 10_00
