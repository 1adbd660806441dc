"""What ``gar dev status`` reports for one local service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool
    data_dir: Path
    log_file: Path

    @property
    def running(self) -> bool:
        return self.pid is not None

    def describe(self) -> str:
        state = "healthy" if self.healthy else ("UNHEALTHY" if self.running else "stopped")
        pid = f"pid {self.pid}" if self.pid else "no pid"
        return f"{self.name:<8} {state:<9} {self.address:<24} {pid:<10} data={self.data_dir}"
