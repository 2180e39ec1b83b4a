"""``python -m emulators.yookassa_payouts --port N [--credentials '{"agent_id": ..., "secret_key": ...}']``."""

from __future__ import annotations

import argparse
import json
import os

from emulators._common.server import run
from emulators.yookassa_payouts.app import create_app
from emulators.yookassa_payouts.state import PayoutsConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.yookassa_payouts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", default=os.environ.get("EMULATOR_WEBHOOK_URL"))
    parser.add_argument("--settle-seconds", type=float, default=2.0)
    parser.add_argument("--credentials", default=os.environ.get("EMULATOR_CREDENTIALS"))
    args = parser.parse_args()
    config = PayoutsConfig(
        public_base_url=f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        settle_seconds=args.settle_seconds,
    )
    agents = None
    if args.credentials:
        c = json.loads(args.credentials)
        agents = {str(c["agent_id"]): str(c["secret_key"])}
    run(create_app(config, agents=agents), host=args.host, port=args.port)


main()
