"""``python -m emulators.catalog --port N``: the Game Catalog emulator as a process (``make run``)."""

from __future__ import annotations

import argparse
import os

from emulators._common.server import run
from emulators.catalog.app import create_app
from emulators.catalog.state import CatalogConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.catalog", description="Run the Game Catalog emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument(
        "--token",
        default=os.environ.get("EMULATOR_CATALOG_TOKEN"),
        help="require this bearer token (env EMULATOR_CATALOG_TOKEN); default: no authentication",
    )
    args = parser.parse_args(argv)
    run(create_app(CatalogConfig(hang_seconds=args.hang_seconds, token=args.token)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
