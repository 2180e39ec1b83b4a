"""``python -m emulators --provider yookassa --port 9101``."""

from emulators._common.cli import main

main()
