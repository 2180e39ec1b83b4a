"""Results: one :class:`ScenarioResult` per scenario, the run's JSON, and the Markdown block that
replaces the text between the ``BEGIN/END service benchmark`` markers of ``docs/performance.md``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from array import array
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from benchmarks.baseline import Baseline
from benchmarks.service.samples import Sample, counts, per_second, summary

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- BEGIN service benchmark -->", "<!-- END service benchmark -->"


@dataclass
class Goal:
    text: str
    met: bool | None
    """None: not measurable in this run (e.g. nothing succeeded)."""


@dataclass
class ScenarioResult:
    name: str
    title: str
    issue_scenario: str
    """Which scenario of the issue it belongs to (1-5)."""
    started: float
    ended: float
    rate: float = 0.0
    """Successful requests (or flows) per second over the measured window."""
    ratio_to_pgbench: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[Any]] = field(default_factory=dict)
    extra_series: dict[str, Any] = field(default_factory=dict)
    """Monitor data for the charts (readiness, RSS, outbox backlog, offered rate...)."""
    checks_ok: bool = True
    """Correctness (audits, lost/doubled alerts, 503 without Retry-After): False fails the run."""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def from_samples(
    name: str,
    title: str,
    issue_scenario: str,
    samples: list[Sample],
    *,
    started: float,
    ended: float,
    baseline: Baseline,
    measured: tuple[float, float] | None = None,
) -> ScenarioResult:
    """A result whose rate is the successful samples per second of ``measured`` (default: the run)."""
    lo, hi = measured or (started, ended)
    ok = [s for s in samples if s[2] == "ok" and lo <= s[0] < hi]
    rate = len(ok) / (hi - lo) if hi > lo else 0.0
    return ScenarioResult(
        name=name,
        title=title,
        issue_scenario=issue_scenario,
        started=started,
        ended=ended,
        rate=round(rate, 1),
        ratio_to_pgbench=round(rate / baseline.tps, 3) if baseline.tps else 0.0,
        counts=counts(samples),
        latency=summary([s[1] for s in ok]),
        series=per_second(samples, started, ended),
    )


def environment() -> dict[str, Any]:
    """Hardware and versions, for the report header."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    versions = {}
    for package in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "httpx", "websockets"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "versions": versions,
    }


def to_json(report: dict[str, Any]) -> str:
    def default(o: object) -> Any:
        if is_dataclass(o) and not isinstance(o, type):
            return asdict(o)
        if isinstance(o, array):
            return list(o)
        return str(o)

    return json.dumps(report, separators=(",", ":"), default=default)


# ---- Markdown ------------------------------------------------------------------------------------


def _goal_text(goals: list[Goal]) -> str:
    if not goals:
        return "—"
    marks = {True: "✅", False: "❌", None: "n/a"}
    return "; ".join(f"{g.text} {marks[g.met]}" for g in goals)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def markdown(report: dict[str, Any], charts: dict[str, str]) -> str:
    env = report["environment"]
    base: Baseline = report["baseline"]
    db = report["database"]
    scenarios: list[ScenarioResult] = report["scenarios"]
    smoke = " **Smoke run: counts are tiny, figures are not meaningful.**" if report["smoke"] else ""
    lines = [
        f"Run {report['when']} (commit `{env['commit']}`), {report['wall_seconds']:.0f} s.{smoke}",
        "",
        f"Machine: {env['cores']} cores ({env['cpu'] or 'unknown CPU'}), {env['memory_gib']} GiB, load average "
        f"{env['load_average'][0]} at the start and {report['load_average_end'][0]} at the end (shared machine). "
        f"PostgreSQL {db['server_version']} with fsync={db['fsync']}, synchronous_commit={db['synchronous_commit']}, "
        f"full_page_writes={db['full_page_writes']}; Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + ".",
        "",
        f"Baseline `a`: pgbench TPC-B scale {base.scale}, {base.clients} clients, {base.threads} threads, "
        f"{base.seconds:g} s on the same server: **{base.tps:,.0f} TPS**. Every rate below is also given as a "
        "ratio to it.",
        "",
        "| # | scenario | rate /s | ratio to `a` | p50 ms | p95 ms | p99 ms | ok | 503 | errors | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scenarios:
        c = s.counts
        shed = c.get("shed", 0) + c.get("shed_no_retry_after", 0)
        errors = c.get("error", 0) + c.get("timeout", 0) + c.get("gave_up", 0)
        lines.append(
            f"| {s.issue_scenario} | {s.title} | {s.rate:,.1f} | {s.ratio_to_pgbench:.3f} | "
            f"{_ms(s.latency.get('p50_ms'))} | {_ms(s.latency.get('p95_ms'))} | {_ms(s.latency.get('p99_ms'))} | "
            f"{c.get('ok', 0):,} | {shed:,} | {errors:,} | {_goal_text(s.goals)} |"
        )
    lines += ["", "Latency is per request, or per end-to-end flow for purchases (create → paid → GET shows it)."]
    for s in scenarios:
        notes = s.details.get("summary")
        if notes:
            lines += ["", f"**{s.title}** — " + notes]
    lines += ["", "Audits: " + report["audit_summary"]]
    if charts:
        lines += ["", "Charts (throughput and p50/p95/p99 latency per second): "]
        lines += [", ".join(f"[{name}]({path})" for name, path in charts.items())]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    wrapped = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + wrapped + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Service benchmark (latest full run of `make bench`)\n\n" + wrapped + "\n"
    DOC.write_text(text)


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
