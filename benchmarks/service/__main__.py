"""``python -m benchmarks.service``: see the package docstring."""

import asyncio
import sys

from benchmarks.service.run import main, parse_args

if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
