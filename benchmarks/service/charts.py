"""PNG charts, one multi-panel figure per scenario (matplotlib, Agg backend: no display needed).

Every figure has the same first two panels on a shared time axis (seconds since the scenario
started): successful requests per second (plus 503s and errors per second, and the offered rate
of open-loop scenarios) and p50/p95/p99 latency of the requests that finished in that second.
Scenario-specific panels follow: outbox backlog, alert latency, readiness, RSS, breaker state,
providers' share. A shaded band marks an injected provider outage, dotted lines the phases.

``python -m benchmarks.service.charts benchmarks/results/full/report.json`` draws them again from
a run's JSON (to change a chart without measuring again).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from benchmarks.service.report import Goal, ScenarioResult

_EXTRA_PANELS = ("outbox", "alerts", "providers", "readiness", "rss_mb", "breaker")


def _none_to_nan(values: list[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def _throughput(ax: Axes, s: ScenarioResult) -> None:
    t = s.series.get("t", [])
    ax.plot(t, s.series.get("ok", [0] * len(t)), label="ok /s", color="tab:green")
    for key, label, color in (
        ("declined", "declined /s", "tab:olive"),
        ("shed", "503 + Retry-After /s", "tab:orange"),
        ("shed_no_retry_after", "503 without Retry-After /s", "tab:pink"),
        ("error", "errors /s", "tab:red"),
        ("timeout", "timeouts /s", "tab:brown"),
        ("gave_up", "gave up /s", "tab:gray"),
        ("dropped", "dropped by generator /s", "black"),
    ):
        if key in s.series:
            ax.plot(t, s.series[key], label=label, color=color, linewidth=0.9)
    offered = s.extra_series.get("offered")
    if offered:
        ax.step(offered["t"], offered["rate"], where="post", label="offered /s", color="tab:blue", linestyle="--")
    ax.set_ylabel("per second")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"{s.title}: throughput", fontsize=9)


def _latency(ax: Axes, s: ScenarioResult) -> None:
    t = s.series.get("t", [])
    for key, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        ax.plot(t, _none_to_nan(s.series.get(key, [])), label=key, color=color, marker=".", markersize=2)
    ax.set_ylabel("ms")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title("latency of the requests that finished in each second", fontsize=9)


def _extra(ax: Axes, key: str, data: dict[str, Any]) -> None:
    t = data["t"]
    if key == "outbox":
        ax.plot(t, data["pending"], label="unpublished events", color="tab:purple")
        ax.set_ylabel("events")
        twin = ax.twinx()
        twin.plot(t, data["oldest_s"], label="oldest unpublished (s)", color="tab:gray", linewidth=0.9)
        twin.set_ylabel("s")
        twin.legend(loc="upper left", fontsize=7)
        ax.set_title("outbox backlog (sampled every 250 ms)", fontsize=9)
    elif key == "alerts":
        for name, color in (("p50", "tab:green"), ("p99", "tab:red")):
            ax.plot(t, _none_to_nan(data[name]), label=f"alert {name}", color=color, marker=".", markersize=2)
        ax.set_ylabel("ms")
        ax.set_title("alert latency: 201 received → WebSocket frame received", fontsize=9)
    elif key == "providers":
        bottom = [0.0] * len(t)
        for name, values in data["share"].items():
            ax.bar(t, values, bottom=bottom, label=name, width=1.0)
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
        ax.set_ylabel("share of created payments")
        ax.set_title("provider of the payments created each second (failover)", fontsize=9)
    elif key == "readiness":
        ax.plot(t, data["ok"], label="/health/ready = 200", color="tab:green", drawstyle="steps-post")
        twin = ax.twinx()
        twin.plot(t, data["ms"], color="tab:gray", linewidth=0.8)
        twin.set_ylabel("probe ms")
        ax.set_ylim(-0.1, 1.1)
        ax.set_title("readiness (1 = ready) and probe latency", fontsize=9)
    elif key == "rss_mb":
        for role, values in data["roles"].items():
            ax.plot(t, values, label=role)
        ax.set_ylabel("RSS MiB")
        ax.set_title("resident memory of the service's processes", fontsize=9)
    elif key == "breaker":
        ax.plot(t, data["state"], label="YooKassa breaker", color="tab:red", drawstyle="steps-post")
        ax.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
        ax.set_title("YooKassa circuit breaker in the API", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)


def render(s: ScenarioResult, path: Path) -> None:
    extras = [k for k in _EXTRA_PANELS if s.extra_series.get(k)]
    panels = 2 + len(extras)
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.6 * panels), sharex=True, squeeze=False)
    column = [a[0] for a in axes]
    _throughput(column[0], s)
    _latency(column[1], s)
    for ax, key in zip(column[2:], extras, strict=True):
        _extra(ax, key, s.extra_series[key])
    outage = s.extra_series.get("outage")
    marks = s.extra_series.get("marks") or []
    for ax in column:
        ax.grid(True, alpha=0.3)
        if outage:
            ax.axvspan(outage[0], outage[1], color="tab:red", alpha=0.08)
        for at, _ in marks:
            ax.axvline(at, color="black", linestyle=":", linewidth=1)
    for at, label in marks:
        column[0].annotate(label, (at, 1.0), xycoords=("data", "axes fraction"), fontsize=7, va="top", ha="left")
    column[-1].set_xlabel("seconds since the scenario started")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_all(scenarios: list[ScenarioResult], directory: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for s in scenarios:
        if not s.series.get("t"):
            continue
        path = directory / f"{s.name}.png"
        render(s, path)
        out[s.name] = path
    return out


def from_json(path: Path) -> None:
    """Draw the charts of a run again from its ``report.json`` (next to it)."""
    data = json.loads(path.read_text())
    fields = set(ScenarioResult.__dataclass_fields__)
    for raw in data["scenarios"]:
        values = {k: v for k, v in raw.items() if k in fields}
        values["goals"] = [Goal(**g) for g in values.get("goals", [])]
        scenario = ScenarioResult(**values)
        phases = scenario.details.get("phases", {})
        if "marks" not in scenario.extra_series and "hot" in phases:  # runs before marks were stored
            hot = phases["hot"]["start"] - scenario.started
            scenario.extra_series["marks"] = [[0.0, " spread over 1000 streamers"], [hot, " all to one streamer"]]
        if scenario.series.get("t"):
            render(scenario, path.parent / f"{scenario.name}.png")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        from_json(Path(argument))
