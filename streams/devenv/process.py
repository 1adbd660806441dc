"""A background server process tracked by a PID file (start, status, graceful stop, kill).

The PID file holds the PID and a marker string that must appear in the process command line, so
a stale PID file whose PID was reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


class DevProcessError(RuntimeError):
    """A local dev service could not be started, became unhealthy, or refused to stop."""


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid_file: Path
    log_file: Path
    marker: str  # must appear in the command line of the process we started

    def pid(self) -> int | None:
        """PID of our running process, or None (a stale PID file is removed)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            proc = psutil.Process(pid)
            alive = proc.status() != psutil.STATUS_ZOMBIE
            ours = self.marker in " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            alive, ours = False, False
        if alive and ours:
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start ``argv`` detached (own session, survives the caller), logging to ``log_file``."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                close_fds=True,
            )
        self._wait_exec(proc)
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def _wait_exec(self, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
        """Between fork and exec the child still shows our command line (no marker yet)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if self.marker in " ".join(psutil.Process(proc.pid).cmdline()):
                    return
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return
            time.sleep(0.01)

    def wait_until(
        self, healthy: Callable[[], bool], timeout_s: float, poll_s: float = 0.25
    ) -> None:
        """Poll ``healthy`` until true; raise with the log tail if the process dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.is_running():
                raise DevProcessError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if healthy():
                return
            time.sleep(poll_s)
        raise DevProcessError(f"{self.name} not healthy after {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        self._signal(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout_s):
            self._signal(pid, signal.SIGKILL)
            _wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL at once (crash simulation for fault tests)."""
        pid = self.pid()
        if pid is None:
            return False
        self._signal(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, n_lines: int = 30) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n_lines:])

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait for ``pid`` to exit completely (all threads, so its sockets are closed)."""
    deadline = time.monotonic() + timeout_s
    zombie_since: float | None = None
    while time.monotonic() < deadline:
        try:
            # Our child: reaped only once its whole thread group has exited.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass  # not our child: its parent (or init) reaps it
        try:
            zombie = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
        if zombie:
            now = time.monotonic()
            zombie_since = zombie_since or now
            if now - zombie_since > 2.0:  # an un-reaped zombie holds no resources
                return True
        time.sleep(0.05)
    return False
