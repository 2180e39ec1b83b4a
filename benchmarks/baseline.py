"""pgbench TPC-B on the same PostgreSQL server: the yardstick every benchmark reports ratios to.

This machine is shared and noisy, so absolute figures mean little; a ratio to pgbench measured in
the same run cancels the host's speed, its fsync cost and the neighbours' load.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class Baseline:
    tps: float
    clients: int
    threads: int
    scale: int
    seconds: float


def _pg_args(admin_dsn: str) -> list[str]:
    url = urlparse(admin_dsn)
    args = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    return args


def _psql(admin_dsn: str, database: str, sql: str) -> None:
    subprocess.run(["psql", *_pg_args(admin_dsn), "-d", database, "-qc", sql], check=True, capture_output=True)


def pgbench(
    admin_dsn: str, *, seconds: float, clients: int = 16, threads: int = 2, scale: int = 10, database: str = ""
) -> Baseline:
    """Initialise a scratch database at ``scale``, run TPC-B for ``seconds``, drop it; returns the TPS."""
    database = database or f"bench_baseline_pgbench_{os.getpid()}"  # concurrent runs never share it
    args = _pg_args(admin_dsn)
    _psql(admin_dsn, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _psql(admin_dsn, "postgres", f'CREATE DATABASE "{database}"')
    try:
        subprocess.run(["pgbench", *args, "-i", "-q", "-s", str(scale), database], check=True, capture_output=True)
        _psql(admin_dsn, database, "CHECKPOINT")
        out = subprocess.run(
            [
                "pgbench",
                *args,
                "-n",
                "-c",
                str(clients),
                "-j",
                str(threads),
                "-T",
                str(max(1, round(seconds))),
                database,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        _psql(admin_dsn, "postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if match is None:
        raise RuntimeError(f"cannot parse pgbench output:\n{out}")
    return Baseline(float(match.group(1)), clients, threads, scale, seconds)
