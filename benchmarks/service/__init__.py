"""End-to-end benchmark of the running service, every figure also a ratio to pgbench measured in
the same run (the machine is shared and noisy; ratios cancel most of it).

    python -m benchmarks.service              # full run, several minutes; rewrites docs/performance.md
    python -m benchmarks.service --smoke      # tiny counts: proves the harness works (CI, < 2 min)
    python -m benchmarks.service --only purchase,stress --capacity 80 --seconds 10   # development

It starts the real processes on loopback with ``payment-service dev`` (API, worker, Tansu,
OpenBao, provider emulators) on a scratch database and drives load from separate, spawned
processes (``--load-processes``), so the load generator never shares the server's event loop. Every
request loop is bounded in count and time and stops by itself; traffic goes only to 127.0.0.1.
fsync and synchronous_commit must be on (the run refuses to measure otherwise).

Scenarios, in order (issue 7's numbering in brackets):

* ``http_overhead`` [1] — ``GET /v1/me`` through every middleware, no database;
* ``purchase`` [1] — durable payments end to end (API → DB → YooKassa emulator → webhook → ledger →
  outbox → Kafka), closed loop; its rate is the *capacity* used by scenarios 3 and 4;
  ``outbox_lag`` [5] — the outbox under that load (per-event lag, relay publish rate, backlog; at
  saturation the lag must not grow);
* ``posting`` / ``posting_hot`` [1, 3] — one ledger posting with its outbox and idempotency rows
  behind HTTP (a wallet donation), over 1000 streamers or all to one;
* ``outbox_lag_half`` [5] — open-loop wallet donations at half the posting rate: the lag of their
  events (the notes' P5 goal, p99 ≤ 200 ms, is defined at that load);
* ``relay_drain`` [5] — the relay's throughput on a backlog (worker paused while donations go in);
* ``hot_streamer`` [3] — open-loop donations at half the capacity, uniform then all to one
  streamer, with 1000 WebSocket alert clients: throughput ratio, alert latency, lost/doubled
  alerts, exact balance;
* ``concurrent`` [2] — 5000 clients create and complete a payment at once; 503 + Retry-After and
  retries with the same key; audit;
* ``stress`` [4] — ramp to 3× capacity with a YooKassa outage mid-run; shedding, failover,
  readiness, peak RSS, recovery ratio; audit.

Results: ``benchmarks/results/<full|smoke|partial>/`` (``report.json`` with every per-second
series, ``report.md``, one PNG per scenario); a full run also replaces the block between the
``BEGIN/END service benchmark`` markers of ``docs/performance.md``.
"""
