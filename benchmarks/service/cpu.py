"""CPU per operation of a closed-loop scenario, by process, against what the goal allows.

The goals are ratios to pgbench, but what limits a 2-core box is CPU: every process of the run
(API, worker, Postgres, the emulators, Tansu, the load generator) takes its share of the same
cores. This turns one run into the figure that explains it:

* before and after the scenario, the CPU time (user + system) of every child of the stack by role
  (``api``, ``api-2``, ``worker``, ``emulator-<name>``, ``tansu``, ``openbao``) and of every
  ``postgres`` process on the machine (the pooled backends live for the whole run: no overflow);
* the load processes' own CPU (they measure themselves: ``cpu_seconds`` in their result);
* the machine's busy time (``/proc/stat``): what no process above accounts for is ``other``
  (other users of the shared machine, short-lived processes, the harness's own monitor);

each divided by the operations that succeeded. The goal's ratio gives the box time one operation
may take: ``cores / (ratio × a)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil

from benchmarks.service.stack import Stack


@dataclass(frozen=True)
class Snapshot:
    roles: dict[str, float]
    """CPU seconds by role: the stack's children, and ``postgres`` (every postgres process)."""
    busy: float
    """CPU seconds the whole machine was busy (all cores; idle, I/O wait and steal excluded)."""


def _cpu(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(times.user + times.system)


def snapshot(stack: Stack) -> Snapshot:
    roles: dict[str, float] = {}
    for role, process in stack.processes().items():
        if (spent := _cpu(process)) is not None:
            roles[role] = spent
    postgres = 0.0
    for process in psutil.process_iter(["name"]):
        if str(process.info.get("name") or "").startswith("postgres") and (spent := _cpu(process)) is not None:
            postgres += spent
    roles["postgres"] = postgres
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return Snapshot(roles, float(busy))


def group(role: str) -> str:
    """Roles as the report shows them: API processes together, emulators together."""
    if role == "api" or role.startswith("api-"):
        return "API"
    if role.startswith("emulator-"):
        return "emulators"
    return {"postgres": "Postgres", "worker": "worker", "tansu": "Tansu", "openbao": "OpenBao"}.get(role, role)


def per_operation(before: Snapshot, after: Snapshot, *, operations: int, load_cpu: float) -> dict[str, Any]:
    """Milliseconds of CPU per successful operation, by group, with ``load generator``, ``other``
    and ``box`` (the machine's busy time; the groups add up to it). Empty without operations."""
    if operations <= 0:
        return {}
    spent: dict[str, float] = {}
    for role, end in after.roles.items():
        if role in before.roles:  # a child restarted in between is left out (its CPU is in "other")
            name = group(role)
            spent[name] = spent.get(name, 0.0) + max(0.0, end - before.roles[role])
    spent["load generator"] = load_cpu
    box = max(0.0, after.busy - before.busy)
    spent["other"] = max(0.0, box - sum(spent.values()))
    ranked = sorted(spent.items(), key=lambda item: (item[0] == "other", -item[1]))  # costliest first, other last
    out = {name: round(1000 * seconds / operations, 3) for name, seconds in ranked}
    out["box"] = round(1000 * box / operations, 3)
    return out


def allowed_ms(cores: int, a: float, ratio: float) -> float:
    """Box time (ms, all cores) one operation may take for ``ratio × a`` operations a second."""
    return round(1000 * cores / (ratio * a), 3) if a > 0 and ratio > 0 else 0.0


def summary(cpu: dict[str, Any], *, allowed: float, goal: str) -> str:
    """One sentence for the report: what an operation cost, by process, against the goal's budget."""
    if not cpu:
        return ""
    parts = ", ".join(f"{name} {ms:,.2f}" for name, ms in cpu.items() if name != "box" and ms >= 0.005)
    return (
        f"CPU per operation (ms, all cores): {parts}; **box {cpu['box']:,.2f} ms**, where {goal} "
        f"allows {allowed:,.2f} ms."
    )
