"""In-process emulator of the platform's playtime API (tests and local development)."""
