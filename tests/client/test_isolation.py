"""The client package depends on httpx, pydantic and the standard library only.

The import-linter contract in pyproject.toml forbids the server's modules and its other
dependencies by name; this test is the allow-list behind it (a new third-party import fails here
even if nobody thought of forbidding it), plus a check in a fresh interpreter that importing the
client loads nothing of the server.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import payment_service.client

PACKAGE = Path(payment_service.client.__file__).parent
ALLOWED_THIRD_PARTY = {"httpx", "pydantic"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports (payment_service.client...)"
            names.add(node.module or "")
    return names


def test_every_import_is_stdlib_httpx_pydantic_or_the_client_itself() -> None:
    offending: dict[str, list[str]] = {}
    files = sorted(PACKAGE.rglob("*.py"))

    for path in files:
        for name in _imported_modules(path):
            top = name.split(".")[0]
            ok = (
                name == "__future__"
                or top in sys.stdlib_module_names
                or top in ALLOWED_THIRD_PARTY
                or name == "payment_service.client"
                or name.startswith("payment_service.client.")
            )
            if not ok:
                offending.setdefault(path.name, []).append(name)

    assert len(files) >= 4
    assert offending == {}


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, payment_service.client\n"
        "bad = sorted(m for m in sys.modules if (m.startswith('payment_service.') and not "
        "m.startswith('payment_service.client')) or m.split('.')[0] in "
        "{'fastapi', 'starlette', 'sqlalchemy', 'asyncpg', 'redis', 'aiokafka', 'orjson', 'structlog'})\n"
        "print(','.join(bad))\n"
    )

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)

    assert out.stdout.strip() == ""
