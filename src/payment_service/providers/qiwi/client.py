"""QIWI client: deliberately makes no calls. KIWI Bank's licence was revoked by the Bank of Russia on
21 Feb 2024 (order OD-266); api.qiwi.com P2P bills no longer work. Every method refuses.
"""

from __future__ import annotations

from typing import NoReturn

from payment_service.providers.errors import ProviderDisabled

PROVIDER = "qiwi"
REASON = (
    "QIWI is disabled: the Bank of Russia revoked KIWI Bank's licence on 21 February 2024 (order OD-266); "
    "its wallet and P2P invoicing no longer work. Use another provider."
)


class QiwiClient:
    def refuse(self, operation: str) -> NoReturn:
        raise ProviderDisabled(REASON, provider=PROVIDER, operation=operation)

    async def aclose(self) -> None:
        return None
