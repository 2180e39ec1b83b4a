"""Child processes: free ports, waiting, process groups, stopping without orphans."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


class StopRequested(Exception):
    """The launcher was asked to stop (signal) while it was starting something."""


SERVICE_PORTS = (20000, 32768)
"""Where the launcher's servers listen, below Linux's default ephemeral range (32768–60999)."""
_RANDOM = random.SystemRandom()


def free_port() -> int:
    """A port nothing listens on, for a child server that binds it a moment later.

    Taken below the kernel's ephemeral range when that leaves room: a port the kernel can hand
    to an outgoing connection meanwhile (a busy test suite opens thousands) would be taken before
    the child binds it (seen: an emulator restarted in a loop on "address already in use"). Other
    launchers choosing at random in the same range are the only competitors left. A port is
    never handed out twice by one process: the children bind theirs only once started, so two
    choices in a row could otherwise fall on the same free port (seen: an emulator restarted in a
    loop because another emulator of the same launcher held its port).
    """
    low, high = SERVICE_PORTS
    high = min(high, _ephemeral_start())
    with _HANDING_OUT:
        for _ in range(50 if high - low >= 1000 else 0):
            port = _RANDOM.randrange(low, high)
            if port not in _HANDED_OUT and _bindable(port):
                _HANDED_OUT.add(port)
                return port
        for _ in range(100):  # the kernel's choice: an ephemeral port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise RuntimeError("no free port found on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_HANDED_OUT: set[int] = set()
"""Ports :func:`free_port` returned in this process (a launcher asks for a dozen, once)."""
_HANDING_OUT = threading.Lock()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return SERVICE_PORTS[1]


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


ANY_PORTS_ENV = "PAYMENT_DEV_ANY_PORTS"
"""Set (to anything) to make the launcher take free ports instead of the well-known 9092/8200: two
stacks started at the same moment (a benchmark beside a test suite) would race for them."""


def preferred_port(port: int) -> int:
    """``port`` when nothing listens on it, else a free one (always a free one under ANY_PORTS_ENV)."""
    if os.environ.get(ANY_PORTS_ENV):
        return free_port()
    return free_port() if port_open("127.0.0.1", port) else port


def wait_for(
    predicate: Callable[[], object],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Poll ``predicate`` until true; fail early if ``proc`` exits or ``cancel`` is set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cancel is not None and cancel.is_set():
            raise StopRequested(f"stopped while waiting for {what}")
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {describe_exit(proc.returncode)} while starting")
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not become ready within {timeout:.0f}s")


PR_SET_PDEATHSIG = 1


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A pre-exec hook making the child get SIGTERM when the parent dies (Linux), else None.

    ``prctl`` is looked up here, in the parent: the hook itself runs between fork and exec,
    where only async-signal-safe work belongs.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def spawn(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    out: int | IO[bytes] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session/process group (signals from the terminal don't reach it)."""
    return subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=out,
        stderr=out,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_pdeathsig_preexec() if die_with_parent else None,
    )


def _killpg(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def stop_processes(procs: list[tuple[subprocess.Popen[bytes], float]], *, force: threading.Event | None = None) -> None:
    """SIGTERM each process group, wait up to each timeout, then SIGKILL the group; reap all.

    Setting ``force`` (a second Ctrl-C) sends SIGKILL to what is left at once.
    """
    started = time.monotonic()
    for proc, _ in procs:
        if proc.poll() is None:
            _killpg(proc, signal.SIGTERM)
    pending = [(p, started + t) for p, t in procs]
    while pending:
        now = time.monotonic()
        still: list[tuple[subprocess.Popen[bytes], float]] = []
        for proc, deadline in pending:
            if proc.poll() is not None:
                _killpg(proc, signal.SIGKILL)  # anything the leader left behind in its group
                continue
            if now >= deadline or (force is not None and force.is_set()):
                _killpg(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
                continue
            still.append((proc, deadline))
        pending = still
        if pending:
            time.sleep(0.05)


def terminate(proc: subprocess.Popen[bytes] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL after ``timeout``; reaps the child."""
    if proc is not None:
        stop_processes([(proc, timeout)])


def log_file(path: Path | None) -> int | IO[bytes]:
    """An append-mode file for a child's output (the child keeps it open), or DEVNULL."""
    return open(path, "ab") if path else subprocess.DEVNULL


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def python_executable() -> str:
    return sys.executable or shutil.which("python3") or "python3"
