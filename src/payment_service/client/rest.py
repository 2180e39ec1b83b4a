"""``PaymentServiceClient``: typed async calls to the Payment Service REST API (httpx).

Every call

* authenticates with ``Authorization: Bearer <token>``; the token provider is called before each
  attempt (so it can hand out a refreshed token);
* for mutating calls, sends an ``Idempotency-Key`` — yours, or a fresh UUID — and returns it in
  the :class:`Result`, with ``replayed`` telling whether the service replayed a stored answer;
* retries, boundedly (:class:`RetryPolicy`), only what is safe to retry with the same key and
  the same body bytes: ``409 idempotency_key_in_use`` (the same request is still running),
  ``503``/``429`` with ``Retry-After``, and connection errors/timeouts;
* raises :class:`~payment_service.client.errors.PaymentServiceError` with the RFC 9457 problem
  for any other error answer (and for the last one when the retries are used up).

Pass your own ``idempotency_key`` derived from your business id (``f"payout:{reward.id}"``) when
you must be able to retry after a crash: the service then runs the request at most once.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from inspect import isawaitable
from types import TracebackType
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

import httpx

from payment_service.client.errors import PaymentServiceError, PaymentServiceUnavailable, Problem
from payment_service.client.models import (
    Donation,
    DonationCreate,
    MoneyValue,
    Order,
    OrderCreate,
    OrderList,
    OrderPay,
    OverlayToken,
    Payment,
    PaymentCancel,
    PaymentCapture,
    PaymentCreate,
    PaymentList,
    Payout,
    ReferralPayout,
    ReferralPayoutCreate,
    Refund,
    RefundCreate,
    RefundList,
    RequestModel,
    ResponseModel,
    TopUp,
    TopUpCreate,
    UserWallet,
    Wallet,
    WalletTransactionPage,
    WhoAmI,
)

R = TypeVar("R", bound=ResponseModel)
T = TypeVar("T")

TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns the bearer token (a service token for the Social/Streaming services), sync or async."""
Sleep = Callable[[float], Awaitable[None]]

IDEMPOTENCY_KEY_IN_USE: Final = "idempotency_key_in_use"
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


def _client_version() -> str:
    try:
        return version("payment-service")
    except PackageNotFoundError:  # pragma: no cover - vendored copy
        return "0"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a call tries before it raises. All delays in seconds."""

    max_attempts: int = 4
    """Attempts in total, the first included (1 = never retry)."""
    backoff_initial: float = 0.2
    """Wait before the 2nd attempt after ``idempotency_key_in_use`` or a transport error; doubles."""
    backoff_max: float = 2.0
    max_retry_after: float = 10.0
    """A ``Retry-After`` longer than this is not waited for: the error is raised at once."""
    retry_transport_errors: bool = True

    def backoff(self, attempt: int) -> float:
        """Delay after failed attempt number ``attempt`` (1-based), with jitter (50-100 %)."""
        base = min(self.backoff_initial * 2.0 ** (attempt - 1), self.backoff_max)
        return float(base * (0.5 + random.random() / 2))


@dataclass(frozen=True, slots=True)
class Operation(Generic[R]):
    """One REST operation the client calls; ``tests/client/test_drift.py`` checks each against the
    server's OpenAPI (method, path, request and response schema, query parameters)."""

    method: str
    path: str
    response: type[R]
    body: type[RequestModel] | None = None
    query: tuple[str, ...] = ()
    status: int = 200
    """The documented success status (any 2xx is accepted)."""

    @property
    def mutating(self) -> bool:
        return self.method != "GET"


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """The answer of a mutating call and how it was obtained."""

    value: T
    idempotency_key: str
    """The key the request was sent with: reuse it to retry the same request."""
    replayed: bool
    """True when the service answered from its idempotency store (the request had run before)."""
    status_code: int
    request_id: str | None
    attempts: int
    headers: Mapping[str, str]
    """The answer's HTTP headers (lower-case names)."""


# ── the operations ───────────────────────────────────────────────────────────────────────────

WHOAMI = Operation("GET", "/v1/me", WhoAmI)

CREATE_PAYMENT = Operation("POST", "/v1/payments", Payment, body=PaymentCreate, status=201)
MAX_WAIT_SECONDS = 30.0
"""The longest long-poll the service holds (``GET /v1/payments/{id}?wait=``)."""
GET_PAYMENT = Operation("GET", "/v1/payments/{payment_id}", Payment, query=("wait",))
LIST_PAYMENTS = Operation("GET", "/v1/payments", PaymentList, query=("payer_id", "status", "cursor", "limit"))
CAPTURE_PAYMENT = Operation("POST", "/v1/payments/{payment_id}/capture", Payment, body=PaymentCapture)
CANCEL_PAYMENT = Operation("POST", "/v1/payments/{payment_id}/cancel", Payment, body=PaymentCancel)

CREATE_REFUND = Operation("POST", "/v1/refunds", Refund, body=RefundCreate, status=201)
GET_REFUND = Operation("GET", "/v1/refunds/{refund_id}", Refund)
LIST_REFUNDS = Operation(
    "GET", "/v1/refunds", RefundList, query=("payment_id", "payer_id", "status", "cursor", "limit")
)

CREATE_ORDER = Operation("POST", "/v1/orders", Order, body=OrderCreate, status=201)
GET_ORDER = Operation("GET", "/v1/orders/{order_id}", Order)
LIST_ORDERS = Operation("GET", "/v1/orders", OrderList, query=("buyer_id", "status", "cursor", "limit"))
PAY_ORDER = Operation("POST", "/v1/orders/{order_id}/pay", Order, body=OrderPay)
CANCEL_ORDER = Operation("POST", "/v1/orders/{order_id}/cancel", Order)

GET_MY_WALLET = Operation("GET", "/v1/wallets/me", Wallet)
LIST_MY_WALLET_TRANSACTIONS = Operation(
    "GET", "/v1/wallets/me/transactions", WalletTransactionPage, query=("cursor", "limit")
)
GET_USER_WALLET = Operation("GET", "/v1/admin/wallets/{user_id}", UserWallet)
LIST_USER_WALLET_TRANSACTIONS = Operation(
    "GET", "/v1/admin/wallets/{user_id}/transactions", WalletTransactionPage, query=("cursor", "limit")
)
CREATE_TOP_UP = Operation("POST", "/v1/wallets/me/top-ups", TopUp, body=TopUpCreate, status=201)
GET_TOP_UP = Operation("GET", "/v1/wallets/me/top-ups/{top_up_id}", TopUp)

CREATE_DONATION = Operation("POST", "/v1/donations", Donation, body=DonationCreate, status=201)
GET_DONATION = Operation("GET", "/v1/donations/{donation_id}", Donation)
ROTATE_OVERLAY_TOKEN = Operation("POST", "/v1/donations/overlay-token", OverlayToken, status=201)

REQUEST_REFERRAL_PAYOUT = Operation(
    "POST", "/v1/referral-payouts", ReferralPayout, body=ReferralPayoutCreate, status=201
)
GET_REFERRAL_PAYOUT = Operation("GET", "/v1/referral-payouts/{request_id}", ReferralPayout)
GET_PAYOUT = Operation("GET", "/v1/payouts/{payout_id}", Payout)

OPERATIONS: Final[tuple[Operation[Any], ...]] = (
    WHOAMI,
    CREATE_PAYMENT,
    GET_PAYMENT,
    LIST_PAYMENTS,
    CAPTURE_PAYMENT,
    CANCEL_PAYMENT,
    CREATE_REFUND,
    GET_REFUND,
    LIST_REFUNDS,
    CREATE_ORDER,
    GET_ORDER,
    LIST_ORDERS,
    PAY_ORDER,
    CANCEL_ORDER,
    GET_MY_WALLET,
    LIST_MY_WALLET_TRANSACTIONS,
    GET_USER_WALLET,
    LIST_USER_WALLET_TRANSACTIONS,
    CREATE_TOP_UP,
    GET_TOP_UP,
    CREATE_DONATION,
    GET_DONATION,
    ROTATE_OVERLAY_TOKEN,
    REQUEST_REFERRAL_PAYOUT,
    GET_REFERRAL_PAYOUT,
    GET_PAYOUT,
)
"""Every operation the client calls (the drift test walks this list)."""


def _retry_after_seconds(raw: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        at = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - datetime.now(UTC)).total_seconds())


def _query_value(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PaymentServiceClient:
    """Async client of the Payment Service for the platform's services.

    ::

        async with PaymentServiceClient("https://payments.internal", token=tokens.get) as payments:
            answer = await payments.request_referral_payout(ReferralPayoutCreate(...))
            print(answer.value.status, answer.idempotency_key)

    ``http_client`` lets you share a configured ``httpx.AsyncClient`` (it is then not closed by
    :meth:`aclose`); otherwise one is created with ``transport`` and ``timeout``. ``sleep`` is what
    the retries wait with (tests pass a recorder). ``correlation_id`` returns the id to send as
    ``X-Correlation-ID`` (e.g. from your request context), so the Payment Service's logs and the
    events it emits carry it.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenProvider,
        *,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy | None = None,
        correlation_id: Callable[[], str | None] | None = None,
        sleep: Sleep = asyncio.sleep,
        user_agent: str | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._retry = retry or RetryPolicy()
        self._correlation_id = correlation_id
        self._sleep = sleep
        self._user_agent = user_agent or f"payment-service-client/{_client_version()}"
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> PaymentServiceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ── identity ─────────────────────────────────────────────────────────────────────────────

    async def whoami(self) -> WhoAmI:
        """Who the token says the caller is (kind, subject, scopes)."""
        return await self._get(WHOAMI)

    # ── payments ─────────────────────────────────────────────────────────────────────────────

    async def create_payment(self, data: PaymentCreate, *, idempotency_key: str | None = None) -> Result[Payment]:
        """Create a payment (scope ``payments:write``). A decline is a payment with status
        ``failed`` (not an error); ``requires_action`` carries the redirect URL or SBP QR code."""
        return await self._call(CREATE_PAYMENT, body=data, idempotency_key=idempotency_key)

    async def get_payment(self, payment_id: uuid.UUID | str, *, wait: float | None = None) -> Payment:
        """The payment. With ``wait`` (seconds, at most 30: more is taken as 30) a long-poll: when
        the payment is not final the answer comes once its status changes, or after ``wait``
        seconds with the status unchanged; call again until it is final (the request's read
        timeout grows by ``wait``). ``429``/``503`` answers are retried after their Retry-After
        by the retry policy like any other."""
        if not wait:
            return await self._get(GET_PAYMENT, path={"payment_id": payment_id})
        wait = min(wait, MAX_WAIT_SECONDS)
        return (
            await self._call(GET_PAYMENT, path={"payment_id": payment_id}, query={"wait": wait}, read_extra=wait)
        ).value

    async def list_payments(
        self,
        *,
        payer_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> PaymentList:
        """Newest first; pass ``next_cursor`` back as ``cursor``. ``payer_id``: services and admins."""
        query = {"payer_id": payer_id, "status": status, "cursor": cursor, "limit": limit}
        return await self._get(LIST_PAYMENTS, query=query)

    async def capture_payment(
        self, payment_id: uuid.UUID | str, *, amount: MoneyValue | None = None, idempotency_key: str | None = None
    ) -> Result[Payment]:
        """Capture an authorized payment (scope ``payments:capture``), in full unless ``amount``."""
        body = PaymentCapture(amount=amount) if amount is not None else PaymentCapture()
        return await self._call(
            CAPTURE_PAYMENT, path={"payment_id": payment_id}, body=body, idempotency_key=idempotency_key
        )

    async def cancel_payment(
        self, payment_id: uuid.UUID | str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Result[Payment]:
        """Cancel an unfinished payment or void its authorization."""
        body = PaymentCancel(reason=reason) if reason is not None else PaymentCancel()
        return await self._call(
            CANCEL_PAYMENT, path={"payment_id": payment_id}, body=body, idempotency_key=idempotency_key
        )

    # ── refunds ──────────────────────────────────────────────────────────────────────────────

    async def create_refund(self, data: RefundCreate, *, idempotency_key: str | None = None) -> Result[Refund]:
        """Ask for a refund (scope ``refunds:write``); it may wait for review (``pending_review``)."""
        return await self._call(CREATE_REFUND, body=data, idempotency_key=idempotency_key)

    async def get_refund(self, refund_id: uuid.UUID | str) -> Refund:
        return await self._get(GET_REFUND, path={"refund_id": refund_id})

    async def list_refunds(
        self,
        *,
        payment_id: uuid.UUID | str | None = None,
        payer_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RefundList:
        query = {"payment_id": payment_id, "payer_id": payer_id, "status": status, "cursor": cursor, "limit": limit}
        return await self._get(LIST_REFUNDS, query=query)

    # ── orders ───────────────────────────────────────────────────────────────────────────────

    async def create_order(self, data: OrderCreate, *, idempotency_key: str | None = None) -> Result[Order]:
        """Create an unpaid order priced from the Game Catalog in the buyer's region."""
        return await self._call(CREATE_ORDER, body=data, idempotency_key=idempotency_key)

    async def get_order(self, order_id: uuid.UUID | str) -> Order:
        return await self._get(GET_ORDER, path={"order_id": order_id})

    async def list_orders(
        self,
        *,
        buyer_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> OrderList:
        query = {"buyer_id": buyer_id, "status": status, "cursor": cursor, "limit": limit}
        return await self._get(LIST_ORDERS, query=query)

    async def pay_order(
        self, order_id: uuid.UUID | str, data: OrderPay, *, idempotency_key: str | None = None
    ) -> Result[Order]:
        """Pay from the wallet, through a provider, or both; a decline is ``failure_code``, not an error."""
        return await self._call(PAY_ORDER, path={"order_id": order_id}, body=data, idempotency_key=idempotency_key)

    async def cancel_order(self, order_id: uuid.UUID | str, *, idempotency_key: str | None = None) -> Result[Order]:
        return await self._call(CANCEL_ORDER, path={"order_id": order_id}, idempotency_key=idempotency_key)

    # ── wallets ──────────────────────────────────────────────────────────────────────────────

    async def get_my_wallet(self) -> Wallet:
        """The calling user's wallet (a user token)."""
        return await self._get(GET_MY_WALLET)

    async def list_my_wallet_transactions(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> WalletTransactionPage:
        return await self._get(LIST_MY_WALLET_TRANSACTIONS, query={"cursor": cursor, "limit": limit})

    async def get_user_wallet(self, user_id: str) -> UserWallet:
        """Any user's wallet and latest lines (scope ``admin:wallets``)."""
        return await self._get(GET_USER_WALLET, path={"user_id": user_id})

    async def list_user_wallet_transactions(
        self, user_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> WalletTransactionPage:
        return await self._get(
            LIST_USER_WALLET_TRANSACTIONS, path={"user_id": user_id}, query={"cursor": cursor, "limit": limit}
        )

    async def create_top_up(self, data: TopUpCreate, *, idempotency_key: str | None = None) -> Result[TopUp]:
        """Pay money into the calling user's wallet through a provider."""
        return await self._call(CREATE_TOP_UP, body=data, idempotency_key=idempotency_key)

    async def get_top_up(self, top_up_id: uuid.UUID | str) -> TopUp:
        return await self._get(GET_TOP_UP, path={"top_up_id": top_up_id})

    # ── donations ────────────────────────────────────────────────────────────────────────────

    async def create_donation(self, data: DonationCreate, *, idempotency_key: str | None = None) -> Result[Donation]:
        """Donate to a streamer (scope ``donations:write``); from the wallet it is ``processed`` at
        once, through a provider it is ``pending`` with ``payment.action`` until paid.
        ``insufficient_funds`` (402) when the wallet is short."""
        return await self._call(CREATE_DONATION, body=data, idempotency_key=idempotency_key)

    async def get_donation(self, donation_id: uuid.UUID | str) -> Donation:
        return await self._get(GET_DONATION, path={"donation_id": donation_id})

    async def rotate_overlay_token(self, *, idempotency_key: str | None = None) -> Result[OverlayToken]:
        """Issue a new overlay WebSocket token for the calling streamer (a user token); the old one
        stops working. ``value.token`` is set on the first answer only (None on a replay)."""
        result = await self._call(ROTATE_OVERLAY_TOKEN, idempotency_key=idempotency_key)
        token = result.headers.get("overlay-token")
        return replace(result, value=result.value.model_copy(update={"token": token}))

    # ── referral payouts and payouts ─────────────────────────────────────────────────────────

    async def request_referral_payout(
        self, data: ReferralPayoutCreate, *, idempotency_key: str | None = None
    ) -> Result[ReferralPayout]:
        """Ask for a referral reward to be paid (scope ``referral_payouts:write``).

        Idempotent by ``data.request_id`` whatever the Idempotency-Key: the same request again
        answers the same row (``status_code`` 200 instead of 201). The outcome arrives as ONE
        ``referral_payout.completed``/``.failed`` event; a refusal is a ``failed`` row, not an error.
        """
        return await self._call(REQUEST_REFERRAL_PAYOUT, body=data, idempotency_key=idempotency_key)

    async def get_referral_payout(self, request_id: str) -> ReferralPayout:
        return await self._get(GET_REFERRAL_PAYOUT, path={"request_id": request_id})

    async def get_payout(self, payout_id: uuid.UUID | str) -> Payout:
        return await self._get(GET_PAYOUT, path={"payout_id": payout_id})

    # ── plumbing ─────────────────────────────────────────────────────────────────────────────

    async def _get(
        self, op: Operation[R], *, path: Mapping[str, object] | None = None, query: Mapping[str, Any] | None = None
    ) -> R:
        return (await self._call(op, path=path, query=query)).value

    async def _call(
        self,
        op: Operation[R],
        *,
        path: Mapping[str, object] | None = None,
        body: RequestModel | None = None,
        query: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        read_extra: float = 0.0,
    ) -> Result[R]:
        url_path = op.path.format(**{k: quote(str(v), safe="") for k, v in (path or {}).items()})
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        key = (idempotency_key or str(uuid.uuid4())) if op.mutating else None
        content: bytes | None = None
        if body is not None:
            # Serialised once: every retry sends the same bytes under the same key.
            content = json.dumps(body.to_body(), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        if self._correlation_id is not None and (correlation := self._correlation_id()):
            headers["X-Correlation-ID"] = correlation

        attempt = 0
        while True:
            attempt += 1
            headers["Authorization"] = f"Bearer {await self._bearer()}"
            try:
                response = await self._http.request(
                    op.method,
                    self._base + url_path,
                    content=content,
                    params=params,
                    headers=headers,
                    timeout=_longer(self._http.timeout, read_extra) if read_extra else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                if self._retry.retry_transport_errors and attempt < self._retry.max_attempts:
                    await self._sleep(self._retry.backoff(attempt))
                    continue
                raise PaymentServiceUnavailable(
                    exc, method=op.method, path=url_path, idempotency_key=key, attempts=attempt
                ) from exc
            if response.is_success:
                return Result(
                    value=op.response.model_validate_json(response.content),
                    idempotency_key=key or "",
                    replayed=response.headers.get("idempotent-replayed") == "true",
                    status_code=response.status_code,
                    request_id=response.headers.get("x-request-id"),
                    attempts=attempt,
                    headers=dict(response.headers),
                )
            problem = Problem.from_response(
                response.status_code, response.content, response.headers.get("content-type", "")
            )
            retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            delay = self._delay_before_retry(problem, retry_after, attempt)
            if delay is None:
                raise PaymentServiceError(
                    problem,
                    method=op.method,
                    path=url_path,
                    idempotency_key=key,
                    retry_after=retry_after,
                    attempts=attempt,
                )
            await self._sleep(delay)

    def _delay_before_retry(self, problem: Problem, retry_after: float | None, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this answer is final."""
        if attempt >= self._retry.max_attempts:
            return None
        in_use = problem.status == 409 and problem.code == IDEMPOTENCY_KEY_IN_USE
        if in_use and retry_after is None:  # the same request is still running in its transaction
            return self._retry.backoff(attempt)
        if (in_use or problem.status in _RETRY_AFTER_STATUSES) and retry_after is not None:
            # e.g. a provider call of the first request is in flight (409 with Retry-After): a
            # wait beyond the cap is the caller's decision, with the key on the error.
            return retry_after if retry_after <= self._retry.max_retry_after else None
        return None

    async def _bearer(self) -> str:
        token = self._token()
        if isawaitable(token):
            token = await token
        return token


def _longer(timeout: httpx.Timeout, extra: float) -> httpx.Timeout:
    """``timeout`` whose read part waits ``extra`` seconds more (a long-poll's answer comes late)."""
    read = None if timeout.read is None else timeout.read + extra
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)
