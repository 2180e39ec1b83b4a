"""The service benchmark harness works end to end (``--smoke``). Not a speed test: no figure is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.xdist_group("heavy")
def test_service_benchmark_smoke_runs_and_the_audit_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.service", "--smoke", "--connections", "4", "--purchase-connections", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((ROOT / "benchmarks" / "results" / "smoke.json").read_text())
    assert report["baseline"]["tps"] > 0
    assert {s["name"] for s in report["scenarios"]} == {"http_overhead", "purchase", "donation_uniform", "donation_hot"}
    assert all(s["requests"] > 0 for s in report["scenarios"])
    assert report["audit"]["ok"] is True
    assert report["audit"]["lost"] == 0
