"""YooKassa (API v3) adapter."""
