"""YooKassa Payouts (API v3 ``/payouts``) adapter."""
