"""``python -m emulators.bank_transfer --port N [--credentials '{"api_key": ..., "webhook_secret": ...}']``."""

from __future__ import annotations

import argparse
import json
import os

from emulators._common.server import run
from emulators.bank_transfer.app import create_app
from emulators.bank_transfer.state import BankConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.bank_transfer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", default=os.environ.get("EMULATOR_WEBHOOK_URL"))
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    parser.add_argument("--credentials", default=os.environ.get("EMULATOR_CREDENTIALS"))
    args = parser.parse_args()
    config = BankConfig(
        public_base_url=f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        settle_seconds=args.settle_seconds,
    )
    merchants = None
    if args.credentials:
        c = json.loads(args.credentials)
        merchants = {str(c["api_key"]): ("platform", str(c["webhook_secret"]))}
    run(create_app(config, merchants=merchants), host=args.host, port=args.port)


main()
