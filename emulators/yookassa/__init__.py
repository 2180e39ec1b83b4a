"""YooKassa API v3 emulator."""
