"""CPU per operation (benchmarks/service/cpu.py): the arithmetic, on made-up snapshots."""

from __future__ import annotations

import pytest
from benchmarks.service.cpu import Snapshot, allowed_ms, group, per_operation, summary


def test_costs_are_grouped_per_operation_and_add_up_to_the_busy_machine() -> None:
    before = Snapshot(
        {"api": 10.0, "api-2": 20.0, "worker": 5.0, "emulator-yookassa": 1.0, "redis": 3.0},
        100.0,
        postgres={101: 20.0, 102: 10.0, 103: 7.0},  # 103 ends during the run
    )
    after = Snapshot(
        {"api": 14.0, "api-2": 24.0, "worker": 6.0, "emulator-yookassa": 2.0, "redis": 3.5},
        120.0,
        postgres={101: 22.0, 102: 11.0, 104: 1.0},  # 104 starts during the run: counted whole
    )

    cost = per_operation(before, after, operations=1000, load_cpu=1.0)

    assert cost == {
        "API": 8.0,  # both API processes, (4 + 4) s / 1000
        "Postgres": 4.0,  # 2 + 1 + 1
        "worker": 1.0,
        "emulators": 1.0,
        "load generator": 1.0,
        "Redis": 0.5,
        "unattributed": 4.5,  # 20 s busy, 15.5 s accounted for
        "box": 20.0,
    }
    assert list(cost)[-2:] == ["unattributed", "box"]  # costliest first, then what nobody claimed


def test_a_child_restarted_during_the_run_is_left_unattributed_and_double_counting_shows() -> None:
    before = Snapshot({"api": 10.0, "tansu": 50.0}, 100.0, postgres={1: 1.0})
    after = Snapshot({"api": 11.0, "tansu-2": 0.5}, 101.0, postgres={1: 2.0})  # tansu restarted

    cost = per_operation(before, after, operations=10, load_cpu=5.0)  # more than the box saw

    assert "tansu-2" not in cost
    assert cost["unattributed"] == pytest.approx(-600.0)  # (1 - 7) s / 10: shown, not hidden


def test_no_operation_no_figures() -> None:
    snap = Snapshot({"api": 1.0}, 1.0)
    assert per_operation(snap, snap, operations=0, load_cpu=0.0) == {}
    assert summary({}, allowed=1.0, goal="0.45 a") == ""


def test_what_a_goal_allows_per_operation() -> None:
    assert allowed_ms(2, 6000.0, 0.25) == pytest.approx(1.333, abs=0.001)  # 1,500/s on 2 cores
    assert allowed_ms(2, 0.0, 0.25) == 0.0
    assert group("api-3") == "API"
    assert group("emulator-sber") == "emulators"
    text = summary({"API": 1.0, "Postgres": 0.5, "box": 1.5}, allowed=0.75, goal="0.45 a")
    assert "box 1.50 ms" in text
    assert "0.45 a allows 0.75 ms (every core busy 100 %)" in text
