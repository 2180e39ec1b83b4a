"""Command line for running an emulator as a real process."""

from __future__ import annotations

import argparse
import importlib
import json
import os
from typing import Any

from emulators._common.server import run
from emulators._common.state import EmulatorConfig

PROVIDERS = ("yookassa", "tbank", "sber", "mobile")


def main(argv: list[str] | None = None, *, provider: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators", description="Run a provider emulator")
    if provider is None:
        parser.add_argument("--provider", required=True, choices=PROVIDERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-base-url", default=None, help="base of confirmation pages (default http://host:port)")
    parser.add_argument(
        "--webhook-url",
        default=os.environ.get("EMULATOR_WEBHOOK_URL"),
        help="where webhooks go (env EMULATOR_WEBHOOK_URL)",
    )
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument(
        "--credentials",
        default=os.environ.get("EMULATOR_CREDENTIALS"),
        help="JSON object shaped like the provider's Vault entry (env EMULATOR_CREDENTIALS); default: test values",
    )
    args = parser.parse_args(argv)
    name = provider or args.provider
    config = EmulatorConfig(
        public_base_url=args.public_base_url or f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        hang_seconds=args.hang_seconds,
    )
    module = importlib.import_module(f"emulators.{name}.app")
    run(module.create_app(config, **accounts(name, args.credentials)), host=args.host, port=args.port)


def accounts(provider: str, raw: str | None) -> dict[str, Any]:
    """The emulator's accepted account from the same JSON the service reads from Vault."""
    if not raw:
        return {}
    c = json.loads(raw)
    if provider == "yookassa":
        return {"shops": {str(c["shop_id"]): str(c["secret_key"])}}
    if provider == "tbank":
        return {"terminals": {str(c["terminal_key"]): str(c["password"])}}
    if provider == "sber":
        return {"merchants": {str(c["user_name"]): (str(c["password"]), str(c["callback_secret"]))}}
    if provider == "mobile":
        return {"merchants": {str(c["api_key"]): ("merchant-1", str(c["webhook_secret"]))}}
    raise ValueError(provider)
