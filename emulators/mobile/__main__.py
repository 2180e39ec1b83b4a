"""``python -m emulators.mobile --port N``."""

from emulators._common.cli import main

main(provider="mobile")
