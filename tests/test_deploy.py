"""Deployment artefacts are validated offline (no container engine on these machines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([BIN / "hadolint", ROOT / "deploy" / "Dockerfile"], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("manifest", sorted((ROOT / "deploy" / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifest_is_valid(manifest: Path) -> None:
    result = subprocess.run(
        [BIN / "kubernetes-validate", "--strict", "--quiet", manifest], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_yaml_is_clean() -> None:
    files = [*sorted((ROOT / "deploy").rglob("*.yaml"))]
    result = subprocess.run(
        [BIN / "yamllint", "-d", "{extends: relaxed, rules: {line-length: {max: 140}}}", *files],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr
