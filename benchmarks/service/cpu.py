"""CPU per operation of a closed-loop scenario, by process, against what the goal allows.

The goals are ratios to pgbench, but what limits a 2-core box is CPU: every process of the run
(API, worker, Postgres, the emulators, Tansu, the load generator) takes its share of the same
cores. This turns one run into the figure that explains it:

* before and after the scenario, the CPU time (user + system) of every child of the stack by role
  (``api``, ``api-2``, ``worker``, ``emulator-<name>``, ``tansu``, ``openbao``), of the Postgres
  processes that serve the stack's database (its backends, and the server's background processes
  — checkpointer, WAL writer, autovacuum — which serve every database; other databases' backends,
  e.g. a test suite's on the same server, are left out), taken per process id, and of Redis
  (``redis-server``, a server other users may share);
* the load processes' own CPU (they measure themselves: ``cpu_seconds`` in their result);
* the machine's busy time (``/proc/stat``): what none of the above accounts for is
  ``unattributed`` (the harness's main process, processes that ended during the run, other users
  of the machine); a negative rest would mean double counting and is shown as it is;

each divided by the operations that succeeded. The box time the goal's ratio allows one operation
at 100 % of every core is ``cores / (ratio × a)``: the goal is out of reach whenever an operation
costs more than that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psutil

from benchmarks.service.stack import Stack


@dataclass(frozen=True)
class Snapshot:
    roles: dict[str, float]
    """CPU seconds by role: the stack's children, and ``redis``."""
    busy: float
    """CPU seconds the whole machine was busy (all cores; idle, I/O wait and steal excluded)."""
    postgres: dict[int, float] = field(default_factory=dict)
    """CPU seconds of each Postgres process serving the stack's database, by process id."""


def _cpu(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(times.user + times.system)


async def snapshot(stack: Stack) -> Snapshot:
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() OR datname IS NULL) "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return await asyncio.to_thread(_read, stack, {int(r["pid"]) for r in rows})


def _read(stack: Stack, postgres_pids: set[int]) -> Snapshot:
    roles: dict[str, float] = {}
    for role, process in stack.processes().items():
        if (spent := _cpu(process)) is not None:
            roles[role] = spent
    postgres: dict[int, float] = {}
    for pid in postgres_pids:
        try:
            spent = _cpu(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        if spent is not None:
            postgres[pid] = spent
    redis = 0.0
    for process in psutil.process_iter(["name"]):
        if str(process.info.get("name") or "").startswith("redis-server") and (spent := _cpu(process)) is not None:
            redis += spent
    roles["redis"] = redis
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return Snapshot(roles, float(busy), postgres)


def group(role: str) -> str:
    """Roles as the report shows them: API processes together, emulators together."""
    if role == "api" or role.startswith("api-"):
        return "API"
    if role.startswith("emulator-"):
        return "emulators"
    return {"worker": "worker", "tansu": "Tansu", "openbao": "OpenBao", "redis": "Redis"}.get(role, role)


def per_operation(before: Snapshot, after: Snapshot, *, operations: int, load_cpu: float) -> dict[str, Any]:
    """Milliseconds of CPU per successful operation, by group, with ``load generator``,
    ``unattributed`` and ``box`` (the machine's busy time; the groups add up to it). Empty
    without operations."""
    if operations <= 0:
        return {}
    spent: dict[str, float] = {}
    for role, end in after.roles.items():
        if role in before.roles:  # a child restarted in between is left out (its CPU is unattributed)
            name = group(role)
            spent[name] = spent.get(name, 0.0) + max(0.0, end - before.roles[role])
    # per process: a backend that started during the run counts whole, one that ended is lost
    spent["Postgres"] = sum(end - before.postgres.get(pid, 0.0) for pid, end in after.postgres.items())
    spent["load generator"] = load_cpu
    box = max(0.0, after.busy - before.busy)
    spent["unattributed"] = box - sum(spent.values())
    ranked = sorted(spent.items(), key=lambda item: (item[0] == "unattributed", -item[1]))  # costliest first
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
    parts = ", ".join(f"{name} {ms:,.2f}" for name, ms in cpu.items() if name != "box" and abs(ms) >= 0.005)
    return (
        f"CPU per operation (ms, all cores): {parts}; **box {cpu['box']:,.2f} ms**, where {goal} "
        f"allows {allowed:,.2f} ms (every core busy 100 %)."
    )
