"""The chart of accounts: every ledger account is built here, from its code and currency.

An account is identified by ``code`` + ``currency`` (``user:42:wallet`` in RUB); its id is a
uuid5 of both, so posting code never looks an id up. The spec also carries the accounting type,
the normal balance, whether the account may go negative, and whether it is *hot*.

Hot accounts are the ones touched by a large share of all postings (the platform fee and VAT
accounts on every purchase, a popular streamer during a donation storm, provider clearing on
every card payment). Changes that cannot break their floor (credits to a credit-normal account,
releases of holds) are appended as deltas without locking the account row; a debit still locks.
Marking an account hot costs only a slightly slower balance read (row + pending deltas).

=====================================  =========  ======  ==============  ===
code                                   type       normal  may go negative hot
=====================================  =========  ======  ==============  ===
``user:{id}:wallet``                   liability  credit  no              no
``streamer:{id}:balance``              liability  credit  no              yes
``developer:{id}:balance``             liability  credit  no              yes
``referrer:{id}:balance``              liability  credit  no              no
``gift_card:{id}``                     liability  credit  no              no
``platform:fees``                      revenue    credit  no              yes
``platform:vat_payable``               liability  credit  no              yes
``platform:order_clearing``            liability  credit  yes             yes
``platform:goodwill``                  expense    debit   yes             yes
``provider:{name}:clearing``           asset      debit   yes             yes
``provider:{name}:fees``               expense    debit   yes             yes
``external:world``                     equity     credit  yes             yes
``platform:donation_clearing``         liability  credit  yes             yes
``streamer:{id}:receivable``           asset      debit   no              no
``provider:{name}:payouts``            asset      debit   yes             yes
``platform:referral_expense``          expense    debit   yes             yes
=====================================  =========  ======  ==============  ===
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from payment_service.kit.money import Money, exponent
from payment_service.models.ledger import AccountType, NormalBalance

ACCOUNT_NAMESPACE = uuid.UUID("6b1f0e4c-3d0a-5b8e-9a57-2f3c4d5e6f70")
"""uuid5 namespace of account ids; never change it (ids are stored)."""

_PART = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def account_id(code: str, currency: str) -> uuid.UUID:
    """The stable id of account ``code`` in ``currency``."""
    return uuid.uuid5(ACCOUNT_NAMESPACE, f"{code}|{currency}")


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What the ledger needs to know to create and post to an account."""

    code: str
    currency: str
    type: AccountType
    normal_balance: NormalBalance
    allow_negative: bool
    hot: bool = False
    id: uuid.UUID = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        exponent(self.currency)
        object.__setattr__(self, "id", account_id(self.code, self.currency))

    def money(self, amount_minor: int) -> Money:
        return Money(amount_minor, self.currency)


def _part(value: object) -> str:
    text = str(value)
    if not _PART.match(text):
        raise ValueError(f"invalid account code part {text!r}")
    return text


def _liability(code: str, currency: str, *, hot: bool = False, allow_negative: bool = False) -> AccountSpec:
    return AccountSpec(code, currency, AccountType.liability, NormalBalance.credit, allow_negative, hot)


def user_wallet(user_id: object, currency: str = "RUB") -> AccountSpec:
    """A player's wallet: what the platform owes the user. Never negative."""
    return _liability(f"user:{_part(user_id)}:wallet", currency)


def streamer_balance(streamer_id: object, currency: str = "RUB") -> AccountSpec:
    """Donations earned by a streamer, not yet paid out. Hot: donation storms credit it."""
    return _liability(f"streamer:{_part(streamer_id)}:balance", currency, hot=True)


def developer_balance(developer_id: object, currency: str = "RUB") -> AccountSpec:
    """A developer's revenue share, not yet paid out. Hot: a popular game's sales credit it."""
    return _liability(f"developer:{_part(developer_id)}:balance", currency, hot=True)


def referrer_balance(user_id: object, currency: str = "RUB") -> AccountSpec:
    """Referral rewards owed to a user."""
    return _liability(f"referrer:{_part(user_id)}:balance", currency)


def gift_card(card_id: object, currency: str = "RUB") -> AccountSpec:
    """The unspent value of a gift card."""
    return _liability(f"gift_card:{_part(card_id)}", currency)


def platform_fees(currency: str = "RUB") -> AccountSpec:
    """The platform's commission income. Hot: every purchase credits it."""
    return AccountSpec("platform:fees", currency, AccountType.revenue, NormalBalance.credit, False, True)


def platform_vat_payable(currency: str = "RUB") -> AccountSpec:
    """VAT collected and owed to the tax authority. Hot: every taxable sale credits it."""
    return _liability("platform:vat_payable", currency, hot=True)


def order_clearing(currency: str = "RUB") -> AccountSpec:
    """Money received for orders and not yet distributed (wallet and card legs meet here).

    Nets to zero per order once the order is settled; may be negative in between.
    """
    return _liability("platform:order_clearing", currency, hot=True, allow_negative=True)


def platform_goodwill(currency: str = "RUB") -> AccountSpec:
    """Cost of goodwill credits and manual adjustments made by support."""
    return AccountSpec("platform:goodwill", currency, AccountType.expense, NormalBalance.debit, True, True)


def provider_clearing(provider: str, currency: str = "RUB") -> AccountSpec:
    """What a payment provider owes us for captured payments, until it settles."""
    return AccountSpec(
        f"provider:{_part(provider)}:clearing", currency, AccountType.asset, NormalBalance.debit, True, True
    )


def external_world(currency: str = "RUB") -> AccountSpec:
    """The outside world: the source of money coming in and the sink of money going out."""
    return AccountSpec("external:world", currency, AccountType.equity, NormalBalance.credit, True, True)


def provider_fees(provider: str, currency: str = "RUB") -> AccountSpec:
    """Fees a payment provider kept from captured payments (an expense of the platform)."""
    return AccountSpec(
        f"provider:{_part(provider)}:fees", currency, AccountType.expense, NormalBalance.debit, True, True
    )


def donation_clearing(currency: str = "RUB") -> AccountSpec:
    """Money paid for donations by card/SBP/mobile, until the donation splits it (same transaction).

    Nets to zero per donation; may be negative in between. Hot: every donation passes through it.
    """
    return _liability("platform:donation_clearing", currency, hot=True, allow_negative=True)


def streamer_receivable(streamer_id: object, currency: str = "RUB") -> AccountSpec:
    """What a streamer owes the platform: a chargeback clawed back more than their balance held."""
    return AccountSpec(
        f"streamer:{_part(streamer_id)}:receivable", currency, AccountType.asset, NormalBalance.debit, False, False
    )


def provider_payouts(provider: str, currency: str = "RUB") -> AccountSpec:
    """Payouts sent through a payout provider (drawn from our payout balance there).

    Credited when a payout is held and posted (the money leaves us); debited when the treasury tops
    the provider's payout balance up (settlement). Negative = paid out and not yet settled. Hot:
    every payout of a scheduled batch credits it.
    """
    return AccountSpec(
        f"provider:{_part(provider)}:payouts", currency, AccountType.asset, NormalBalance.debit, True, True
    )


def referral_expense(currency: str = "RUB") -> AccountSpec:
    """What the platform spends on referral rewards (the source of every referral payout)."""
    return AccountSpec("platform:referral_expense", currency, AccountType.expense, NormalBalance.debit, True, True)
