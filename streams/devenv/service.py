"""What every local service shares: a home dir, a PID-tracked process, stop/kill/clean/status."""

from __future__ import annotations

import shutil
from pathlib import Path

from streams.config import DevSettings
from streams.devenv.process import DevProcessError, ManagedProcess
from streams.devenv.status import ServiceStatus


class LocalService:
    """Subclasses set ``home``, ``data_dir`` and ``process`` and implement start/healthy."""

    dev: DevSettings
    home: Path
    data_dir: Path
    process: ManagedProcess

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def address(self) -> str:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def start(self, timeout_s: float | None = None) -> None:
        raise NotImplementedError

    def stop(self) -> bool:
        """Graceful SIGTERM, SIGKILL after ``stop_timeout_s``; False if it was not running."""
        return self.process.stop(self.dev.stop_timeout_s)

    def kill(self) -> bool:
        """SIGKILL without shutdown (fault tests: an unclean crash)."""
        return self.process.kill()

    def clean(self) -> None:
        """Delete the service's state (refuses while running)."""
        if self.process.is_running():
            raise DevProcessError(f"stop {self.process.name} before cleaning its data")
        shutil.rmtree(self.home, ignore_errors=True)

    def statuses(self) -> list[ServiceStatus]:
        """One line per process (a cluster: one per node)."""
        return [self.status()]

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        return ServiceStatus(
            name=self.process.name,
            address=self.address,
            pid=pid,
            healthy=pid is not None and self.healthy(),
            data_dir=self.data_dir,
            log_file=self.process.log_file,
        )
