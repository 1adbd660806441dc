"""Settings for private (per-test) service instances on free ports."""

from __future__ import annotations

import socket
from pathlib import Path

from streams.config import DevSettings, load_settings


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just reported free (tiny race window; fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def private_dev_settings(state_dir: Path, base: DevSettings | None = None) -> DevSettings:
    """Copy of ``base`` with fresh ports and its own state dir; the jar cache stays shared."""
    base = base or load_settings().dev
    return base.model_copy(
        update={
            "state_dir": state_dir,
            "kafka_port": free_port(base.host),
            "kafka_controller_port": free_port(base.host),
            "metrics_port": free_port(base.host),
        }
    )
