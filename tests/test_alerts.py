"""The alerting rules (``deploy/prometheus/alerts.yaml``) name metrics and labels the service
really exports, and each alert has its section in ``docs/runbook.md``: a renamed metric or label
would otherwise leave an alert that can never fire."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import payment_service

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _exported() -> dict[str, set[str]]:
    """Every series name the service's processes can export, with its label names."""
    for module in pkgutil.walk_packages(payment_service.__path__, "payment_service."):
        importlib.import_module(module.name)
    names: dict[str, set[str]] = {}
    for collector in set(REGISTRY._names_to_collectors.values()):  # no public way to list them
        labels = set(getattr(collector, "_labelnames", ()))
        for family in collector.collect():
            kind, base = family.type, family.name
            series = {"counter": [f"{base}_total"], "histogram": [base + s for s in HISTOGRAM_SUFFIXES]}.get(
                kind, [base]
            )
            for name in series:
                names[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return names


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched on it) for every series selector of a PromQL expression."""
    text = re.sub(r'"[^"]*"', '""', expr)  # label values
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    found = []
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", text):
        name, matchers = match.group(1), match.group(2) or ""
        if name in PROMQL_WORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword or a function
        found.append((name, set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))))
    return found


def _grouping_labels(expr: str) -> set[str]:
    return {
        label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for label in group.split(",")
    }


ALERTS = _rules()


def test_there_are_alerts_and_each_name_is_unique() -> None:
    names = [rule["alert"] for rule in ALERTS]
    assert len(names) >= 10
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_an_alert_names_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    exported = _exported()
    selectors = _selectors(rule["expr"])
    assert selectors, f"no metric found in {rule['expr']!r}"
    for name, labels in selectors:
        assert name in exported, f"{rule['alert']}: {name} is not a metric of the service"
        assert labels <= exported[name], f"{rule['alert']}: {name} has no label {labels - exported[name]}"
    grouped = _grouping_labels(rule["expr"])
    assert grouped <= set().union(*(exported[name] for name, _ in selectors)), f"{rule['alert']}: by {grouped}"


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_an_alert_has_a_severity_a_summary_and_its_runbook_section(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"]
    path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert (ROOT / path) == RUNBOOK
    headings = {line[3:].strip().lower() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    assert anchor == rule["alert"].lower()
    assert anchor in headings, f"docs/runbook.md has no section '## {rule['alert']}'"


def test_the_checker_catches_an_unknown_metric_or_label() -> None:
    exported = _exported()
    assert ("http_requests_total", {"status"}) in _selectors('rate(http_requests_total{status="503"}[5m])')
    assert "no_such_metric_total" not in exported
    assert "status" not in exported["outbox_pending_events"]
    assert [name for name, _ in _selectors("sum by (provider) (increase(x_total[1h])) > 0")] == ["x_total"]
