"""Shared pieces of the emulators: magic values, state base, webhook dispatcher, control router, server."""
