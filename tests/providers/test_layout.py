"""Convention 25: every provider folder has the same four files; every emulator the same five."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ["yookassa", "tbank", "sber", "qiwi", "mobile"]
EMULATORS = ["yookassa", "tbank", "sber", "mobile"]


@pytest.mark.parametrize("name", PROVIDERS)
def test_provider_folder_has_the_four_files(name: str) -> None:
    folder = ROOT / "src" / "payment_service" / "providers" / name

    assert {p.name for p in folder.glob("*.py")} >= {"client.py", "schemas.py", "adapter.py", "webhooks.py"}


@pytest.mark.parametrize("name", EMULATORS)
def test_emulator_folder_has_the_five_files(name: str) -> None:
    folder = ROOT / "emulators" / name

    assert {p.name for p in folder.glob("*.py")} >= {"app.py", "routes.py", "state.py", "scenarios.py", "webhooks.py"}


def test_src_never_imports_emulators() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "src").rglob("*.py")
        if "import emulators" in p.read_text() or "from emulators" in p.read_text()
    ]

    assert offenders == []
