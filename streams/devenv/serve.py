"""``gar dev serve``: one local service in the foreground, for a container's main process.

It starts the service as ``gar dev up`` does (config, storage format, health wait, the
metrics database), copies the service's log to stdout, and on SIGTERM or SIGINT stops it
gracefully and exits 0. If the service dies on its own it exits 1, so the container's restart
policy sees it. The local compose override runs Kafka and InfluxDB this way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import BinaryIO

from streams.config import DevSettings
from streams.devenv.services import services


def serve(dev: DevSettings, name: str, poll_s: float = 1.0) -> int:
    (service,) = services(dev, [name])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    print(service.status().describe(), flush=True)
    log_file = service.process.log_file
    with log_file.open("rb") as log:
        while not stop.is_set() and service.process.is_running():
            _copy_new(log, sys.stdout.buffer)
            stop.wait(poll_s)
        _copy_new(log, sys.stdout.buffer)
    if stop.is_set():
        service.stop()
        return 0
    with contextlib.suppress(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # as a container's PID 1, reap what exited
    print(f"{name} exited on its own", file=sys.stderr, flush=True)
    return 1


def _copy_new(src: BinaryIO, dst: BinaryIO) -> None:
    chunk = src.read()
    if chunk:
        dst.write(chunk)
        dst.flush()
