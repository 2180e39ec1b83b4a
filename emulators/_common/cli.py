"""Command line for running an emulator as a real process."""

from __future__ import annotations

import argparse
import importlib
import os

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
    args = parser.parse_args(argv)
    name = provider or args.provider
    config = EmulatorConfig(
        public_base_url=args.public_base_url or f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        hang_seconds=args.hang_seconds,
    )
    module = importlib.import_module(f"emulators.{name}.app")
    run(module.create_app(config), host=args.host, port=args.port)
