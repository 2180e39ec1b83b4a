"""The benchmark script works (``--smoke``: tiny data, about ten seconds). Not a speed test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]


def test_the_ledger_benchmark_runs_and_checks_its_invariants() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ledger.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "BENCH_ADMIN_DSN": ADMIN_URL},
        cwd=str(ROOT),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.split("JSON ", 1)[1])
    assert report["pgbench_tps"] > 0
    assert set(report["ratios"]) >= {"uniform/a", "hot/a", "hot/uniform"}
    for workload in report["workloads"].values():
        assert workload["transfers"] > 0
        assert workload["invariants_ok"], workload["problems"]
