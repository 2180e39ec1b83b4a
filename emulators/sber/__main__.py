"""``python -m emulators.sber --port N``."""

from emulators._common.cli import main

main(provider="sber")
