"""YooKassa Payouts emulator (API v3 ``/payouts``, ``/sbp_banks``)."""
