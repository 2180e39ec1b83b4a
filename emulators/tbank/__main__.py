"""``python -m emulators.tbank --port N``."""

from emulators._common.cli import main

main(provider="tbank")
