"""``python -m emulators.yookassa --port N``."""

from emulators._common.cli import main

main(provider="yookassa")
