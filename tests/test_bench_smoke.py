"""The service benchmark harness works end to end (``--smoke``). Not a speed test: no figure is asserted,
only that every scenario ran, produced the structure the report needs, and that the audits passed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "benchmarks" / "results" / "smoke"
SCENARIOS = {
    "http_overhead",
    "purchase",
    "outbox_lag",
    "posting",
    "posting_hot",
    "outbox_lag_half",
    "relay_drain",
    "hot_streamer",
    "concurrent",
    "stress",
}


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["scenarios"]}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.service", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    data: dict[str, Any] = json.loads((SMOKE / "report.json").read_text())
    return data


@pytest.mark.xdist_group("heavy")
def test_every_scenario_ran_with_its_series_and_chart(report: dict[str, Any]) -> None:
    assert report["smoke"] is True
    assert report["baseline"]["tps"] > 0
    assert report["database"]["fsync"] == "on"
    assert report["database"]["synchronous_commit"] == "on"
    assert report["environment"]["cores"] >= 1
    scenarios = _by_name(report)
    assert set(scenarios) == SCENARIOS
    for name, s in scenarios.items():
        assert s["counts"]["ok"] > 0, name
        assert s["checks_ok"] is True, (name, s["details"])
        series = s["series"]
        assert len(series["t"]) == len(series["p50"]) == len(series["p99"]) > 0, name
        assert all(isinstance(g["text"], str) for g in s["goals"])
        assert (SMOKE / f"{name}.png").stat().st_size > 0, name
    assert "BEGIN service benchmark" not in (SMOKE / "report.md").read_text()


@pytest.mark.xdist_group("heavy")
def test_the_audits_passed(report: dict[str, Any]) -> None:
    audit = report["audit"]
    assert audit["books"]["ok"] is True, audit["books"]
    assert audit["books"]["payments"] > 0
    assert audit["books"]["unbalanced_currencies"] == []
    assert audit["reconciliation"]["ok"] is True, audit["reconciliation"]
    assert audit["reconciliation"]["provider_charges"] > 0
    assert audit["idempotency"]["ok"] is True, audit["idempotency"]
    for name in ("concurrent", "stress"):
        details = _by_name(report)[name]["details"]
        assert details["audit"]["books"]["ok"] is True, name
        assert details["audit"]["reconciliation"]["ok"] is True, name
        assert details["sheds_without_retry_after"] == 0, name


@pytest.mark.xdist_group("heavy")
def test_scenario_details_have_what_the_report_promises(report: dict[str, Any]) -> None:
    s = _by_name(report)
    concurrent = s["concurrent"]["details"]
    assert concurrent["clients"] == report["plan"]["concurrent_clients"]
    assert set(concurrent["outcomes"]) <= {"ok", "declined", "error", "timeout", "gave_up"}
    assert {"p50_ms", "p95_ms", "p99_ms"} <= concurrent["create_latency"].keys()
    assert {"p50_ms", "p95_ms", "p99_ms"} <= concurrent["e2e_latency"].keys()
    assert concurrent["audit"]["idempotency"]["ok"] is True

    hot = s["hot_streamer"]["details"]
    assert hot["ws_clients"] == report["plan"]["ws_clients"]
    assert hot["ws_hot_watchers"] == report["plan"]["ws_hot_watchers"]
    assert hot["alerts"]["frames"] > 0
    assert hot["alerts"]["lost"] == hot["alerts"]["doubled"] == hot["alerts"]["unexpected"] == 0
    assert hot["balance"]["ok"] is True, hot["balance"]
    assert {"uniform", "hot"} == set(hot["phases"])

    stress = s["stress"]["details"]
    assert stress["outcomes_injected"].get("error_503", 0) > 0
    assert {"api", "worker"} <= stress["rss_peak_mb"].keys()
    assert stress["readiness"]["samples"] > 0
    assert "recovery_ratio" in stress

    assert s["purchase"]["details"]["outbox"]["events"] > 0
    assert s["outbox_lag_half"]["details"]["events_created"] > 0
    assert s["outbox_lag_half"]["details"]["unpublished_after_settle"] == 0
    assert s["relay_drain"]["details"]["backlog"] > 0
    assert s["relay_drain"]["details"]["still_unpublished"] == 0

    for name in ("http_overhead", "purchase", "posting", "posting_hot"):  # CPU per operation by process
        cost = s[name]["details"]["cpu_ms_per_op"]
        assert {"API", "Postgres", "worker", "load generator", "unattributed", "box"} <= cost.keys(), name
        assert cost["Postgres"] > 0, name
        assert cost["API"] > 0, name
        assert cost["load generator"] > 0, name
        assert sum(v for k, v in cost.items() if k != "box") == pytest.approx(cost["box"], abs=0.01), name
        assert s[name]["details"]["cpu_ms_allowed"] > 0, name
    assert s["purchase"]["details"]["cpu_ms_per_op"]["emulators"] > 0
